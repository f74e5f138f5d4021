"""Helpers for account tests: an applicant with every check done, the agreement signed, an open account,
and money moved over the API (plain async functions over the API and the sandbox control API)."""

from __future__ import annotations

import secrets

import httpx

from tests.contract_helpers import fresh_face, sign, signature_upload
from tests.helpers import LoggedIn, Person, Sandbox, verified_user


async def bind_phone(client: httpx.AsyncClient, sandbox: Sandbox, user: LoggedIn, phone: str) -> None:
    code = await sandbox.phone_code(phone)
    resp = await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)
    assert resp.status_code == 200, resp.text


async def ready_applicant(client, sandbox, person: Person | None = None) -> tuple[LoggedIn, Person]:
    """A user with the phone bound and all three identity checks passed."""
    user, person = await verified_user(client, sandbox, person)
    await bind_phone(client, sandbox, user, person.phone)
    return user, person


async def start_application(client, user, account_class: str = "II") -> dict:
    resp = await client.post("/api/v1/account-applications", headers=user.headers, json={"account_class": account_class})
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


async def sign_agreement(client, sandbox, user, application_id: int) -> dict:
    resp = await client.post("/api/v1/contracts", headers=user.headers,
                             json={"template": "account_agreement", "subject_id": application_id})
    assert resp.status_code in (200, 201), resp.text
    contract = resp.json()
    signed = await sign(client, user, contract["id"], verify_id=await fresh_face(client, sandbox, user),
                        upload_id=await signature_upload(client, user))
    assert signed.status_code == 200, signed.text
    return signed.json()


async def signed_application(client, sandbox, account_class: str = "II", *, user=None, person=None):
    """``(user, person, application)`` with nothing missing: ready to submit."""
    if user is None:
        user, person = await ready_applicant(client, sandbox, person)
    app = await start_application(client, user, account_class)
    await sign_agreement(client, sandbox, user, app["id"])
    return user, person, app


async def submit(client, user, application_id: int) -> httpx.Response:
    return await client.post(f"/api/v1/account-applications/{application_id}/submit", headers=user.headers)


async def open_account(client, sandbox, account_class: str = "II", *, user=None, person=None,
                       card_balance_fen: int | None = None) -> tuple[LoggedIn, Person, dict]:
    """A user with an open account of that class; the bound card's balance set when given."""
    user, person, app = await signed_application(client, sandbox, account_class, user=user, person=person)
    resp = await submit(client, user, app["id"])
    assert resp.status_code == 201, resp.text
    if card_balance_fen is not None:
        await set_card_balance(sandbox, person.card_number, card_balance_fen)
    return user, person, resp.json()


async def set_card_balance(sandbox: Sandbox, card_number: str, balance_fen: int) -> None:
    await sandbox._post(f"bank-cards/{card_number}/balance", {"balance_fen": balance_fen})


async def card_balance(client, card_number: str) -> int:
    resp = await client.get(f"/sandbox/control/bank-cards/{card_number}")
    assert resp.status_code == 200, resp.text
    return resp.json()["balance_fen"]


def new_key() -> str:
    return "k-" + secrets.token_hex(12)


async def top_up(client, user, account_id: int, amount_fen, *, key: str | None = None) -> httpx.Response:
    return await client.post(f"/api/v1/accounts/{account_id}/top-ups", json={"amount_fen": amount_fen},
                             headers={**user.headers, "Idempotency-Key": key or new_key()})


async def withdraw(client, user, account_id: int, amount_fen, *, key: str | None = None) -> httpx.Response:
    return await client.post(f"/api/v1/accounts/{account_id}/withdrawals", json={"amount_fen": amount_fen},
                             headers={**user.headers, "Idempotency-Key": key or new_key()})


async def ledger_is_consistent() -> list:
    """``ledger check``'s mismatches (empty when every balance equals the sum of its entries)."""
    from services.accounts import ledger

    return (await ledger.check()).mismatches
