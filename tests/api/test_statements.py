"""Monthly statements (issue 22, item 5): the PDF is sealed by the bank and verifies with pdfsig and the
verify endpoint; the CSV's entries sum to closing − opening and agree with the ledger; months are China
Standard Time months (an entry at 23:59:59 on the last day and one at 00:00:00 on the next land in their own
months); an empty month; another user's account; months that have no statement.

Entries are booked through the ledger (``ledger.post``) and then dated where the test needs them (the
ledger stamps ``utcnow()``): ``booked_at`` and ``booked_day`` move together, as the ledger writes them."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import datetime, timedelta, timezone

import pytest

from core.clock import CHINA_TZ, china_day, utcnow
from core.pii import mask_card
from handlers.spec import MAX_ID
from models.accounts import Account, EntryDirection, EntryKind, LedgerEntry
from services.accounts import ledger, rules
from services.accounts.numbers import new_account_number
from services.db import atomic
from tests.account_helpers import open_account
from tests.esign.test_pdfsig import PDFSIG, pdfsig
from tests.helpers import assert_error, login_new_user

CST = CHINA_TZ


@pytest.fixture(scope="module")
async def holder(server):
    """A user with an account opened through the API (a verified identity: the name on the statement)."""
    import httpx

    from tests.helpers import Sandbox

    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as client:
        user, person, account = await open_account(client, Sandbox(client))
    row = await Account.get(id=account["id"])
    return user, person, row


async def another_account(holder_row: Account, *, opened_at: datetime) -> Account:
    """A second account of the same holder, opened at ``opened_at`` (straight into the table, as opening leaves it)."""
    return await Account.create(
        number=new_account_number("623099"), user_id=holder_row.user_id, holder_index=holder_row.holder_index,
        account_class="II", rules_version=rules.RULES_VERSION, bound_card_enc="x", bound_card_index="x",
        bound_card_masked="622202******0000", opened_at=opened_at)


async def book(account_id: int, direction: EntryDirection, amount_fen: int, at: datetime) -> LedgerEntry:
    kind = EntryKind.TOP_UP if direction == EntryDirection.CREDIT else EntryKind.TOLL
    posted = await atomic(lambda conn: ledger.post(conn, account_id, direction=direction, kind=kind,
                                                   amount_fen=amount_fen, reference="t" + secrets.token_hex(8),
                                                   counterparty="收费站" if kind == EntryKind.TOLL else None))
    await LedgerEntry.filter(id=posted.entry.id).update(booked_at=at.astimezone(timezone.utc),
                                                        booked_day=at.astimezone(CST).date())
    return await LedgerEntry.get(id=posted.entry.id)


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def signed(row: dict) -> int:
    return int(row["amount_fen"]) * (1 if row["direction"] == "credit" else -1)


async def statement_csv(client, user, account_id: int, month: str) -> list[dict]:
    resp = await client.get(f"/api/v1/accounts/{account_id}/statements/{month}.csv", headers=user.headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    return rows(resp.text)


def summary(found: list[dict]) -> tuple[int, list[dict], int]:
    assert found[0]["record"] == "opening" and found[-1]["record"] == "closing"
    entries = found[1:-1]
    assert all(r["record"] == "entry" for r in entries)
    return int(found[0]["balance_after_fen"]), entries, int(found[-1]["balance_after_fen"])


async def test_entries_at_the_edges_of_a_china_month_land_in_their_own_month(client, holder):
    user, _, row = holder
    account = await another_account(row, opened_at=datetime(2025, 1, 10, 9, tzinfo=CST))
    last_minute = await book(account.id, EntryDirection.CREDIT, 10_000, datetime(2025, 1, 31, 23, 59, 59, tzinfo=CST))
    first_minute = await book(account.id, EntryDirection.DEBIT, 2_500, datetime(2025, 2, 1, 0, 0, 0, tzinfo=CST))
    later = await book(account.id, EntryDirection.CREDIT, 123, datetime(2025, 2, 28, 23, 59, 59, tzinfo=CST))
    after = await book(account.id, EntryDirection.DEBIT, 99, datetime(2025, 3, 1, 0, 0, 0, tzinfo=CST))

    opening, jan, closing = summary(await statement_csv(client, user, account.id, "2025-01"))
    assert (opening, closing) == (0, 10_000)
    assert [r["reference"] for r in jan] == [last_minute.reference]
    assert jan[0]["booked_at"] == "2025-01-31T23:59:59+08:00"  # in UTC that is still the 31st, 15:59

    opening, feb, closing = summary(await statement_csv(client, user, account.id, "2025-02"))
    assert [r["reference"] for r in feb] == [first_minute.reference, later.reference]
    assert (opening, closing) == (10_000, 10_000 - 2_500 + 123)  # opening: the balance after January's last entry
    assert closing - opening == sum(signed(r) for r in feb)

    opening, mar, closing = summary(await statement_csv(client, user, account.id, "2025-03"))
    assert [r["reference"] for r in mar] == [after.reference] and (opening, closing) == (7_623, 7_524)


async def test_the_csv_agrees_with_the_ledger_and_sums_to_the_balance_change(client, holder):
    user, _, row = holder
    account = await another_account(row, opened_at=datetime(2025, 4, 1, 0, 0, tzinfo=CST))
    await book(account.id, EntryDirection.CREDIT, 50_000, datetime(2025, 4, 3, 12, tzinfo=CST))
    booked = [await book(account.id, direction, amount, datetime(2025, 5, day, 8, tzinfo=CST))
              for day, (direction, amount) in enumerate([(EntryDirection.DEBIT, 1_234), (EntryDirection.CREDIT, 5),
                                                         (EntryDirection.DEBIT, 20_000), (EntryDirection.DEBIT, 1)], 1)]
    found = await statement_csv(client, user, account.id, "2025-05")
    opening, entries, closing = summary(found)
    assert closing - opening == sum(signed(r) for r in entries) == 5 - 1_234 - 20_000 - 1
    assert opening == 50_000 and closing == booked[-1].balance_after_fen == 28_770
    ledger_rows = await LedgerEntry.filter(account_id=account.id, booked_day__gte=datetime(2025, 5, 1).date(),
                                           booked_day__lte=datetime(2025, 5, 31).date()).order_by("id")
    assert [(r["reference"], r["kind"], r["direction"], int(r["amount_fen"]), int(r["balance_after_fen"]))
            for r in entries] == [(e.reference, str(e.kind), str(e.direction), e.amount_fen, e.balance_after_fen)
                                  for e in ledger_rows]
    assert [r["amount_yuan"] for r in entries] == ["12.34", "0.05", "200.00", "0.01"]  # core.money, no float
    assert found[-1]["balance_after_yuan"] == "287.70" and found[0]["balance_after_yuan"] == "500.00"


async def test_a_month_without_entries_carries_the_balance_over(client, holder):
    user, _, row = holder
    account = await another_account(row, opened_at=datetime(2025, 6, 1, 0, 0, tzinfo=CST))
    await book(account.id, EntryDirection.CREDIT, 777, datetime(2025, 6, 30, 10, tzinfo=CST))
    await book(account.id, EntryDirection.DEBIT, 7, datetime(2025, 8, 2, 10, tzinfo=CST))
    opening, entries, closing = summary(await statement_csv(client, user, account.id, "2025-07"))
    assert (opening, entries, closing) == (777, [], 777)
    # the month the account was opened, before anything was booked: zero
    fresh = await another_account(row, opened_at=datetime(2025, 6, 15, 0, 0, tzinfo=CST))
    assert summary(await statement_csv(client, user, fresh.id, "2025-06")) == (0, [], 0)


async def test_the_pdf_is_sealed_by_the_bank_and_verifies(client, holder, tmp_path):
    user, person, row = holder
    month = f"{china_day():%Y-%m}"
    entry = await book(row.id, EntryDirection.CREDIT, 12_345, utcnow())
    resp = await client.get(f"/api/v1/accounts/{row.id}/statements/{month}.pdf", headers=user.headers)
    assert resp.status_code == 200, resp.text

    assert resp.headers["content-type"] == "application/pdf" and resp.content.startswith(b"%PDF-")
    assert "attachment" in resp.headers["content-disposition"]

    check = await client.post("/api/v1/contracts/verify", headers={**user.headers, "content-type": "application/pdf"},
                              content=resp.content)
    v = check.json()
    assert check.status_code == 200 and v["ok"] is True, v
    assert v["signer_subject"] and "Sandbox Bank" in v["signer_subject"]
    assert (v["document_kind"], v["statement_month"], v["statement_account"]) == (
        "account_statement", month, mask_card(row.number))
    assert v["statement_ref"] == f"ST{month.replace('-', '')}-{row.id}" and v["contract"] is None
    assert row.number not in resp.content.decode("latin-1")  # the full number is never printed

    if PDFSIG:  # CI has it (tests/esign/test_pdfsig.py fails there without it)
        lines = pdfsig(tmp_path, resp.content, "statement.pdf")
        assert "  - Signature Validation: Signature is Valid." in lines, lines
        assert "  - Signer Certificate Common Name: Sandbox Bank E-Contract Signing (dev)" in lines, lines
        assert "  - Signature Field Name: BankSignature" in lines, lines
        assert "  - Total document signed" in lines and "Signature #2:" not in lines, lines

    # the CSV of the same month shows the same entry and balance
    _, entries, closing = summary(await statement_csv(client, user, row.id, month))
    assert entry.reference in [r["reference"] for r in entries] and closing == (await Account.get(id=row.id)).balance_fen

    tampered = bytearray(resp.content)
    tampered[resp.content.index(b"stream", 1000) + 20] ^= 0x01
    bad = (await client.post("/api/v1/contracts/verify", headers={**user.headers, "content-type": "application/pdf"},
                             content=bytes(tampered))).json()
    assert bad["ok"] is False


async def test_an_empty_month_has_a_sealed_pdf_too(client, holder):
    user, _, row = holder
    account = await another_account(row, opened_at=datetime(2025, 9, 1, 0, 0, tzinfo=CST))
    resp = await client.get(f"/api/v1/accounts/{account.id}/statements/2025-09.pdf", headers=user.headers)
    assert resp.status_code == 200, resp.text
    v = (await client.post("/api/v1/contracts/verify", headers={**user.headers, "content-type": "application/pdf"},
                           content=resp.content)).json()
    assert v["ok"] is True and v["statement_month"] == "2025-09"


async def test_another_users_account_answers_like_one_that_does_not_exist(client, sandbox, holder):
    _, _, row = holder
    stranger = await login_new_user(client, sandbox)
    month = f"{china_day():%Y-%m}"
    for ext in ("pdf", "csv"):
        theirs = await client.get(f"/api/v1/accounts/{row.id}/statements/{month}.{ext}", headers=stranger.headers)
        nobody = await client.get(f"/api/v1/accounts/{MAX_ID}/statements/{month}.{ext}", headers=stranger.headers)
        got = assert_error(theirs, 404, "ACCOUNT_NOT_FOUND")
        assert {**got, "request_id": ""} == {**assert_error(nobody, 404, "ACCOUNT_NOT_FOUND"), "request_id": ""}
        assert row.number not in theirs.text and mask_card(row.number) not in theirs.text
        unauthenticated = await client.get(f"/api/v1/accounts/{row.id}/statements/{month}.{ext}")
        assert unauthenticated.status_code == 401


@pytest.mark.parametrize("ext", ["pdf", "csv"])
async def test_months_without_a_statement_are_refused_with_their_own_codes(client, holder, ext):
    user, _, row = holder
    account = await another_account(row, opened_at=datetime(2025, 10, 31, 23, 30, tzinfo=CST))
    today = china_day()
    next_month = (today.replace(day=28) + timedelta(days=5)).replace(day=1)
    cases = {
        "2026-13": "STATEMENT_MONTH_INVALID", "2026-00": "STATEMENT_MONTH_INVALID", "26-01": "STATEMENT_MONTH_INVALID",
        "2026-1": "STATEMENT_MONTH_INVALID", "abcd-ef": "STATEMENT_MONTH_INVALID", "2026-01-01": "STATEMENT_MONTH_INVALID",
        f"{next_month:%Y-%m}": "STATEMENT_MONTH_IN_FUTURE", "9999-12": "STATEMENT_MONTH_IN_FUTURE",
        "2025-09": "STATEMENT_BEFORE_OPENING",  # the account was opened on 31 October (China time)
    }
    for month, code in cases.items():
        resp = await client.get(f"/api/v1/accounts/{account.id}/statements/{month}.{ext}", headers=user.headers)
        assert_error(resp, 422, code, "month")
    # the month of opening and the current month have one; 2025-10-31 23:30 CST is 15:30 UTC, still October
    for month in ("2025-10", f"{today:%Y-%m}"):
        resp = await client.get(f"/api/v1/accounts/{account.id}/statements/{month}.{ext}", headers=user.headers)
        assert resp.status_code == 200, (month, resp.text)
