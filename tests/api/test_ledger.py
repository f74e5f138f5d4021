"""The ledger under concurrency and at the edges of China Standard Time days and years: limits are
never exceeded, a balance is always the sum of its entries, and ``python -m app ledger check`` names the
account whose balance does not add up. Run on MySQL for the locking (CI runs every test on both)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from core.clock import utcnow
from models.accounts import Account, AccountHolder, EntryDirection, EntryKind, LedgerEntry
from models.users import User
from services.accounts import ledger, rules
from services.accounts.ledger import BalanceCapExceeded, InsufficientFunds, LimitExceeded
from services.accounts.numbers import new_account_number
from services.db import atomic
from tests.e2e.servers import ROOT

II, III = rules.RULES["II"], rules.RULES["III"]
pytestmark = pytest.mark.usefixtures("server")  # the database, as the server has it


async def new_account(account_class: str = "II", balance_fen: int = 0, *, holder: str | None = None) -> Account:
    """An open account (straight into the table, as opening would leave it), funded through the ledger."""
    user = await User.create(openid="o" + secrets.token_hex(12))
    holder = holder or secrets.token_hex(32)
    await AccountHolder.get_or_create(holder_index=holder)
    account = await Account.create(
        number=new_account_number("623099"), user_id=user.id, holder_index=holder, account_class=account_class,
        rules_version=rules.RULES_VERSION, bound_card_enc="x", bound_card_index="x",
        bound_card_masked="622202******0000", opened_at=utcnow())
    if balance_fen:
        await credit(account.id, balance_fen, "seed")
    return account


async def credit(account_id: int, amount_fen: int, reference: str, kind: str = "top_up"):
    return await atomic(lambda conn: ledger.post(conn, account_id, direction=EntryDirection.CREDIT, kind=kind,
                                                 amount_fen=amount_fen, reference=reference))


async def spend(account_id: int, amount_fen: int, reference: str, *, outflow: bool = True):
    return await atomic(lambda conn: ledger.post(conn, account_id, direction=EntryDirection.DEBIT, kind=EntryKind.TOLL,
                                                 amount_fen=amount_fen, reference=reference, counts_as_outflow=outflow))


async def attempt(coro) -> BaseException | None:
    try:
        await coro
    except (LimitExceeded, InsufficientFunds, BalanceCapExceeded) as exc:
        return exc
    return None


async def entries_sum(account_id: int) -> int:
    rows = await LedgerEntry.filter(account_id=account_id)
    return sum(e.amount_fen if e.direction == EntryDirection.CREDIT else -e.amount_fen for e in rows)


async def test_fifty_concurrent_outflows_stop_exactly_at_the_daily_limit():
    start = 3 * II.daily_outflow_fen  # the balance is not what stops them
    account = await new_account("II", start)
    amount = 30_000  # ¥300: 33 of them fit in ¥10,000 (¥9,900), the 34th would not
    results = await asyncio.gather(*(attempt(spend(account.id, amount, f"c{i}")) for i in range(50)))
    fits = II.daily_outflow_fen // amount
    assert sum(r is None for r in results) == fits
    assert all(isinstance(r, LimitExceeded) for r in results if r is not None)
    after = await Account.get(id=account.id)
    assert after.balance_fen == start - fits * amount == await entries_sum(account.id)
    assert after.outflow_day_fen == fits * amount and after.outflow_year_fen == fits * amount
    assert await LedgerEntry.filter(account_id=account.id, kind=EntryKind.TOLL).count() == fits


async def test_concurrent_outflows_of_mixed_amounts_never_pass_the_limit():
    account = await new_account("II", 3 * II.daily_outflow_fen)
    amounts = [10_000 + 7_919 * i for i in range(50)]  # ¥100 .. ¥3,980, ¥102,000 in all
    results = await asyncio.gather(*(attempt(spend(account.id, a, f"m{i}")) for i, a in enumerate(amounts)))
    used = sum(a for a, r in zip(amounts, results) if r is None)
    assert 0 < used <= II.daily_outflow_fen
    # each refused amount was refused for a reason that still holds: it does not fit on top of what was used
    assert all(used + a > II.daily_outflow_fen for a, r in zip(amounts, results) if r is not None)
    after = await Account.get(id=account.id)
    assert after.outflow_day_fen == used and after.balance_fen == await entries_sum(account.id)


async def test_concurrent_outflows_never_overdraw():
    account = await new_account("II", 100_000)
    results = await asyncio.gather(*(attempt(spend(account.id, 7_000, f"o{i}")) for i in range(30)))
    assert sum(r is None for r in results) == 100_000 // 7_000
    assert all(isinstance(r, InsufficientFunds) for r in results if r is not None)
    assert (await Account.get(id=account.id)).balance_fen == 100_000 % 7_000 == await entries_sum(account.id)


async def test_class_iii_balance_cap_holds_under_concurrent_credits():
    account = await new_account("III", 0)
    results = await asyncio.gather(*(attempt(credit(account.id, 15_000, f"t{i}")) for i in range(20)))
    fits = III.balance_cap_fen // 15_000  # 13 × ¥150 = ¥1,950
    assert sum(r is None for r in results) == fits
    assert all(isinstance(r, BalanceCapExceeded) for r in results if r is not None)
    assert (await Account.get(id=account.id)).balance_fen == fits * 15_000 == await entries_sum(account.id)


async def test_class_iii_daily_and_yearly_outflow_limits():
    account = await new_account("III", III.balance_cap_fen)
    await spend(account.id, III.daily_outflow_fen, "all-of-today")
    await credit(account.id, 100, "a-little-more")
    with pytest.raises(LimitExceeded):
        await spend(account.id, 1, "one-fen-too-many")
    # moves to the bound card are outside the limits (the balance still binds)
    await spend(account.id, 100, "to-bound-card", outflow=False)
    assert (await Account.get(id=account.id)).outflow_day_fen == III.daily_outflow_fen
    # a fresh day, but a year used all but ¥1: the yearly limit alone stops the next ¥1.01
    await credit(account.id, 1_000, "refill")
    year = ledger.china_day(utcnow()).year
    await Account.filter(id=account.id).update(outflow_day_fen=0, outflow_year=year,
                                               outflow_year_fen=III.yearly_outflow_fen - 100)
    with pytest.raises(LimitExceeded):
        await spend(account.id, 101, "past-the-year")
    await spend(account.id, 100, "the-rest-of-the-year")
    assert (await Account.get(id=account.id)).outflow_year_fen == III.yearly_outflow_fen


async def test_the_same_movement_posts_once():
    account = await new_account("II", 50_000)
    first, second = await asyncio.gather(spend(account.id, 20_000, "order-1"), spend(account.id, 20_000, "order-1"))
    assert sorted([first.created, second.created]) == [False, True] and first.entry.id == second.entry.id
    assert (await Account.get(id=account.id)).balance_fen == 30_000


async def test_a_refused_movement_leaves_nothing():
    account = await new_account("II", 10_000)
    with pytest.raises(InsufficientFunds):
        await spend(account.id, 10_001, "too-much")
    assert await LedgerEntry.filter(account_id=account.id).count() == 1
    assert (await Account.get(id=account.id)).outflow_day_fen == 0


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(timezone.utc)


async def test_days_turn_at_midnight_china_time_not_utc(monkeypatch):
    account = await new_account("II", 5 * II.daily_outflow_fen)
    clock = {"now": at("2026-11-29T23:59:59+08:00")}
    monkeypatch.setattr(ledger, "utcnow", lambda: clock["now"])
    await spend(account.id, II.daily_outflow_fen, "late-on-the-29th")
    with pytest.raises(LimitExceeded):
        await spend(account.id, 1, "still-the-29th")
    # 16:00 UTC is midnight in Beijing: a new day, the counter starts again
    clock["now"] = at("2026-11-30T00:00:00+08:00")
    await spend(account.id, II.daily_outflow_fen, "early-on-the-30th")
    # ... and UTC's midnight eight hours later is no new day in China
    clock["now"] = at("2026-11-30T08:00:01+08:00")
    with pytest.raises(LimitExceeded):
        await spend(account.id, 1, "after-utc-midnight")
    entries = await LedgerEntry.filter(account_id=account.id, kind=EntryKind.TOLL).order_by("id")
    assert [str(e.booked_day) for e in entries] == ["2026-11-29", "2026-11-30"]
    assert (await Account.get(id=account.id)).outflow_year_fen == 2 * II.daily_outflow_fen


async def test_years_turn_at_new_year_china_time(monkeypatch):
    account = await new_account("II", 2 * II.yearly_outflow_fen)
    clock = {"now": at("2026-12-31T23:59:59+08:00")}
    monkeypatch.setattr(ledger, "utcnow", lambda: clock["now"])
    # as if the year so far had used all but ¥50 of the yearly limit
    await Account.filter(id=account.id).update(outflow_year=2026, outflow_year_fen=II.yearly_outflow_fen - 5_000)
    with pytest.raises(LimitExceeded):
        await spend(account.id, 5_001, "over-the-year")
    await spend(account.id, 5_000, "the-last-of-2026")
    with pytest.raises(LimitExceeded):
        await spend(account.id, 1, "nothing-left-in-2026")
    clock["now"] = at("2027-01-01T00:00:00+08:00")  # 2026-12-31T16:00Z
    await spend(account.id, 1_000, "first-of-2027")
    after = await Account.get(id=account.id)
    assert (after.outflow_year, after.outflow_year_fen, after.outflow_day_fen) == (2027, 1_000, 1_000)
    assert str(after.outflow_day) == "2027-01-01"


async def test_outflow_used_reads_the_counters_in_china_time():
    account = Account(outflow_day=at("2026-11-30T12:00:00+08:00").date(), outflow_day_fen=700, outflow_year=2026,
                      outflow_year_fen=9_000)
    assert ledger.outflow_used(account, at("2026-11-30T00:00:00+08:00")) == (700, 9_000)
    assert ledger.outflow_used(account, at("2026-11-29T23:59:59+08:00")) == (0, 9_000)  # a stale day reads 0
    assert ledger.outflow_used(account, at("2027-01-01T00:00:00+08:00")) == (0, 0)


async def test_class_iii_flows_flag_the_person_for_id_collection():
    holder = secrets.token_hex(32)
    first = await new_account("III", 0, holder=holder)
    second = await new_account("III", 0, holder=holder)
    moved, step = 0, 0
    while moved + 199_000 < rules.CLASS_III_ID_COLLECTION_FEN:  # in and out, across both accounts
        account = (first, second)[(step // 2) % 2]
        if step % 2 == 0:
            await credit(account.id, 199_000, f"move-{step}")
        else:  # to the bound card: not counted against the outflow limits, still Class III flow
            await spend(account.id, 199_000, f"move-{step}", outflow=False)
        moved, step = moved + 199_000, step + 1
    assert (await AccountHolder.get(holder_index=holder)).id_collection_required_at is None
    empty = next(iter([a for a in (first, second) if (await Account.get(id=a.id)).balance_fen == 0]))
    await credit(empty.id, 199_000, "the-last-straw")
    flagged = await AccountHolder.get(holder_index=holder)
    assert flagged.class_iii_flow_fen == moved + 199_000 >= rules.CLASS_III_ID_COLLECTION_FEN
    assert flagged.id_collection_required_at is not None


def ledger_check(settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "VAR_DIR": settings.var_dir, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app", "ledger", "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


async def test_ledger_check_names_a_hand_broken_balance(settings):
    account = await new_account("II", 12_345)
    await spend(account.id, 345, "coffee")
    ok = await asyncio.to_thread(ledger_check, settings)
    assert ok.returncode == 0 and "ledger OK" in ok.stdout, ok.stdout + ok.stderr
    try:
        # someone edits a balance by hand, without an entry
        await Account.filter(id=account.id).update(balance_fen=12_000 + 1)
        bad = await asyncio.to_thread(ledger_check, settings)
        assert bad.returncode == 1, bad.stdout
        assert f"account id={account.id} " in bad.stdout and "balance 12001 fen, entries sum to 12000 fen" in bad.stdout
        assert account.number not in bad.stdout  # named by id and masked number
        assert "ledger BROKEN: 1 of" in bad.stdout
    finally:
        await Account.filter(id=account.id).update(balance_fen=12_000)
    assert (await ledger.check()).ok


async def test_ledger_check_catches_a_deleted_entry():
    account = await new_account("II", 500)
    await credit(account.id, 250, "second")
    await credit(account.id, 125, "third")
    # the middle entry: the last entry's balance_after still matches the balance, only the sum does not
    last = (await LedgerEntry.filter(account_id=account.id).order_by("id"))[1]
    saved = {f: getattr(last, f) for f in ("id", "account_id", "direction", "kind", "amount_fen", "balance_after_fen",
                                           "counts_as_outflow", "reference", "counterparty", "booked_at", "booked_day")}
    await LedgerEntry.filter(id=last.id).delete()
    try:
        report = await ledger.check()
        assert [m.account_id for m in report.mismatches] == [account.id]
    finally:
        await LedgerEntry.create(**saved)
    assert (await ledger.check()).ok
