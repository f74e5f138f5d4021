"""The ``/api/v1`` surface the mini-program calls."""

from sanic import Blueprint

from handlers.miniprogram import accounts, auth, contracts, identity


def blueprint() -> Blueprint:
    return Blueprint.group(auth.bp, identity.bp, contracts.bp, accounts.bp, url_prefix="/api/v1")
