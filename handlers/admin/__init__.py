"""The staff console under ``/admin/``: server-rendered HTML forms (Jinja2), not the JSON API, so its
routes are outside the OpenAPI document (``app.openapi.UNPUBLISHED_PREFIXES``). Mounted only when
``ADMIN_ENABLED``; without it every ``/admin/`` path is the app's ordinary 404."""

from sanic import Blueprint

from handlers.admin import accounts, audit, auth, customers, dashboard, partners, payments, proposals, queues, risk


def blueprint() -> Blueprint:
    return Blueprint.group(auth.bp, dashboard.bp, customers.bp, proposals.bp, queues.bp, accounts.bp, partners.bp,
                           payments.bp, risk.bp, audit.bp, url_prefix="/admin")
