"""Wiring: create_app() (app.factory), settings loading, providers, DB init, middleware, errors, CLI."""
