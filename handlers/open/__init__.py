"""The ``/open/v1`` surface partners call with signed requests (docs/open-api.md)."""

from sanic import Blueprint

from handlers.open import debits


def blueprint() -> Blueprint:
    return Blueprint.group(debits.bp, url_prefix="/open/v1")
