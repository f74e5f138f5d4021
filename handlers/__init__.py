"""Thin Sanic blueprints: parse, authorise, one service call, shape the response."""
