"""The ``/api/v1`` surface the mini-program calls."""

from sanic import Blueprint

from handlers.miniprogram import (
    accounts, auth, bindings, contracts, identity, lifecycle, payments, statements, vehicles,
)


def blueprint() -> Blueprint:
    return Blueprint.group(auth.bp, identity.bp, contracts.bp, accounts.bp, lifecycle.bp, statements.bp, vehicles.bp,
                           bindings.bp, payments.bp, url_prefix="/api/v1")
