"""The decision point: every movement and sensitive step asks ``decide`` before any fen moves, inside
its own transaction.

``decide`` evaluates the rule set in force against a ``Movement`` and answers ``allow``, ``review``
(hold) or ``block``, with the rules that fired and the values they saw. The strongest action of the
active rules that fired wins; shadow rules are evaluated and recorded (``"shadow": true``) but never
change the answer. A value on the allow list lets the movement through whatever the other rules say;
one on the block list fires the list rules that name its list.

Every decision is recorded as a ``RiskEvent`` in the caller's transaction, with or without a rule set
in force (the history the next rule set will look back on). The rules read that history through
``services.risk.history``; ``evaluate`` is the one function that turns a rule set, a movement and a
history into a decision, live (``DbHistory``) and in replays (``MemoryHistory``).

Velocity is exact under concurrency: the caller already holds its account's row lock (money moves
lock the account first), and every other key a velocity rule counts (card, plate, partner, device, IP,
user) has a lock row (``RiskKeyLock``) that ``decide`` takes, in one global order, before counting. So
concurrent movements sharing a key are counted one after the other: with a limit of N, exactly N get
through, on any number of workers and hosts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import CHINA_TZ, utcnow
from core.errors import AppError
from models.risk import RiskEvent, RiskKeyLock
from services.db import placeholder
from services.risk import rules as rules_
from services.risk.history import DbHistory, History, column
from services.risk.rules import (AmountRule, ListRule, NewDeviceRule, NightRule, RuleSetFile, TravelRule,
                                 UnusualAmountRule, VelocityRule)

STRENGTH = {"allow": 0, "review": 1, "block": 2}
HOLDING = ("top_up", "withdrawal")  # subjects held for an operator on review; the others are refused
EARTH_RADIUS_KM = 6371.0088


class RiskBlocked(AppError):
    status, code, message = 403, "RISK_BLOCKED", "交易存在风险，已被拒绝"


class RiskReview(AppError):
    status, code, message = 403, "RISK_REVIEW", "交易需人工审核，暂未处理"


@dataclass(frozen=True)
class Movement:
    subject: str  # rules.SUBJECTS
    at: datetime
    amount_fen: int = 0
    account_id: int | None = None
    user_id: int | None = None
    category: str | None = None
    reference: str = ""
    values: dict[str, str] = field(default_factory=dict)  # key or list name -> value (PII by blind index)
    location: tuple[float, float] | None = None  # (lat, lng), WGS-84 degrees
    balance_fen: int | None = None  # the account's balance before it, for new_device's share

    def keys(self) -> dict[str, str]:
        found = {k: v for k, v in self.values.items() if v is not None and k in rules_.KEYS}
        if self.account_id is not None:
            found["account"] = str(self.account_id)
        if self.user_id is not None:
            found["user"] = str(self.user_id)
        return found


@dataclass(frozen=True)
class Decision:
    decision: str  # allow | review | block
    version: int
    reasons: list[dict]  # {"rule", "type", "action", "shadow", ...values}

    @property
    def refusal(self) -> type[AppError] | None:
        return {"block": RiskBlocked, "review": RiskReview}.get(self.decision)


def counted(subject: str, decision: str | None) -> bool:
    """Whether the movement counts as having happened: allowed, or held (for the subjects that hold)."""
    return decision in (None, "allow") or (decision == "review" and subject in HOLDING)


async def decide(conn: BaseDBAsyncClient, movement: Movement, *, account_locked: bool = True) -> Decision | None:
    """Decide ``movement`` and record it. None when no rule set is in force (recorded all the same).

    ``account_locked``: the caller holds the account's row lock (every money movement does); otherwise
    the account key, when a velocity rule counts it, is locked like the others."""
    rule_set = await rules_.in_force()
    decision = None
    if rule_set is not None:
        await _lock_keys(conn, movement, rule_set, skip=("account",) if account_locked else ())
        # no rule for this subject: nothing can fire, and an allow list has nothing to override
        applies = any(movement.subject in r.applies_to for r in rule_set.rules)
        listed = await listed_now(conn, movement.values) if applies else {}
        windows = [movement.at - timedelta(seconds=s) for s in rules_.WINDOWS.values()]
        decision = await evaluate(rule_set, movement, DbHistory(conn, windows), listed)
    await record(conn, movement, decision)
    return decision


@dataclass(frozen=True)
class Refused:
    """What a unit of work returns instead of raising, so that what it recorded (the decision, a rejected
    application) commits before the caller is refused: raising inside the transaction would roll it back."""

    error: type[AppError]


async def commit_then_refuse(work):
    """Run ``work(conn)`` in one transaction; a ``Refused`` it returns is raised once that has committed."""
    from services.db import atomic

    done = await atomic(work)
    if isinstance(done, Refused):
        raise done.error()
    return done


async def screen(movement: Movement) -> Decision | None:
    """For a step that moves no money of ours yet (an ETC binding, a payment order): decide in a
    transaction of its own, record it, and raise the refusal once the record has committed."""

    async def work(conn: BaseDBAsyncClient) -> Decision | Refused | None:
        decision = await decide(conn, movement, account_locked=False)
        return Refused(decision.refusal) if decision is not None and decision.refusal is not None else decision

    return await commit_then_refuse(work)


async def record(conn: BaseDBAsyncClient, movement: Movement, decision: Decision | None) -> RiskEvent:
    keys = movement.keys()
    lat, lng = movement.location or (None, None)
    return await RiskEvent.create(
        subject=movement.subject, at=movement.at, reference=movement.reference[:64], user_id=movement.user_id,
        account_id=movement.account_id, amount_fen=movement.amount_fen, category=movement.category,
        id_index=movement.values.get("id"), lat=lat, lng=lng, balance_fen=movement.balance_fen,
        **{column(k): v for k, v in keys.items() if k not in ("account", "user")},
        decision=decision and decision.decision, rule_version=decision and decision.version,
        reasons=decision and decision.reasons, counted=counted(movement.subject, decision and decision.decision),
        using_db=conn)


async def _lock_keys(conn: BaseDBAsyncClient, movement: Movement, rule_set: RuleSetFile, skip: tuple[str, ...]) -> None:
    keys = movement.keys()
    wanted = sorted({(r.key, keys[r.key]) for r in rule_set.rules
                     if isinstance(r, VelocityRule) and movement.subject in r.applies_to
                     and r.key in keys and r.key not in skip})
    for kind, value in wanted:  # one global order: two movements never wait on each other in a cycle
        row = await RiskKeyLock.filter(kind=kind, value=value).select_for_update().using_db(conn).first()
        if row is None:
            # First use of this key: create its row (a racing creator makes one of the two a deadlock
            # victim, which ``atomic`` runs again), then lock it.
            ignore = "INSERT OR IGNORE" if conn.capabilities.dialect == "sqlite" else "INSERT IGNORE"
            mark = placeholder(conn)
            await conn.execute_query(f"{ignore} INTO risk_key_locks (kind, value) VALUES ({mark}, {mark})",
                                     [kind, value])
            await RiskKeyLock.filter(kind=kind, value=value).select_for_update().using_db(conn).first()


async def listed_now(conn: BaseDBAsyncClient, values: dict[str, str]) -> dict[str, str]:
    """``{list: action}`` for the values on a list now (a block wins over an allow). Plain SQL: it runs
    on every money movement."""
    values = {k: v for k, v in values.items() if v is not None and k in rules_.LISTS}
    if not values:
        return {}
    m = placeholder(conn)
    pairs = " OR ".join([f"(list = {m} AND value = {m})"] * len(values))
    rows = await conn.execute_query_dict(
        f"SELECT list, action FROM risk_list_entries WHERE ({pairs}) AND (expires_at IS NULL OR expires_at > {m})",  # nosec B608
        [p for pair in values.items() for p in pair] + [utcnow()])
    found: dict[str, str] = {}
    for row in rows:
        if found.get(row["list"]) != "block":
            found[row["list"]] = row["action"]
    return found


async def evaluate(rule_set: RuleSetFile, movement: Movement, history: History, listed: dict[str, str]) -> Decision:
    """The decision ``rule_set`` makes on ``movement``, given what came before it and what is listed."""
    if any(action == "allow" for action in listed.values()):
        allowed = sorted(name for name, action in listed.items() if action == "allow")
        return Decision("allow", rule_set.version, [{"rule": "allow-list", "type": "list", "action": "allow",
                                                      "shadow": False, "lists": allowed}])
    keys = movement.keys()
    reasons: list[dict] = []
    for rule in rule_set.rules:
        if movement.subject not in rule.applies_to:
            continue
        fired = await _fires(rule, movement, keys, history, listed)
        if fired is not None:
            reasons.append({"rule": rule.id, "type": rule.type, "action": rule.action,
                            "shadow": rule.status == "shadow", **fired})
    enforced = [r["action"] for r in reasons if not r["shadow"]]
    return Decision(max(enforced, key=STRENGTH.__getitem__, default="allow"), rule_set.version, reasons)


async def _fires(rule, movement: Movement, keys: dict[str, str], history: History,
                 listed: dict[str, str]) -> dict | None:
    """What the rule saw when it fires on ``movement``; None when it does not."""
    amount = movement.amount_fen
    if isinstance(rule, AmountRule):
        if (rule.categories is None or movement.category in rule.categories) and amount > rule.max_amount_fen:
            return {"amount_fen": amount, "max_amount_fen": rule.max_amount_fen}
    elif isinstance(rule, ListRule):
        hits = sorted(name for name in rule.lists if listed.get(name) == "block")
        if hits:
            return {"lists": hits}
    elif isinstance(rule, VelocityRule):
        if rule.key not in keys:
            return None
        since = movement.at - timedelta(seconds=rules_.WINDOWS[rule.window])
        count, total = await history.velocity(rule.key, keys[rule.key], rule.applies_to, since)
        count, total = count + 1, total + amount  # this one included
        if (rule.max_count is not None and count > rule.max_count) or (
                rule.max_amount_fen is not None and total > rule.max_amount_fen):
            return {"key": rule.key, "window": rule.window, "count": count, "amount_fen": total,
                    "max_count": rule.max_count, "max_amount_fen": rule.max_amount_fen}
    elif isinstance(rule, UnusualAmountRule):
        if "account" not in keys or amount <= rule.min_amount_fen or (
                rule.categories is not None and movement.category not in rule.categories):
            return None
        since = movement.at - timedelta(days=rule.history_days)
        count, largest = await history.largest(keys["account"], rule.applies_to, movement.category, since)
        if count >= rule.min_history and amount > rule.factor * largest:
            return {"amount_fen": amount, "largest_fen": largest, "history": count, "factor": rule.factor}
    elif isinstance(rule, TravelRule):
        if rule.key not in keys or movement.location is None:
            return None
        since = movement.at - timedelta(seconds=rules_.WINDOWS[rule.window])
        last = await history.last_located(rule.key, keys[rule.key], since)
        if last is None:
            return None
        km = distance_km(last[1], last[2], *movement.location)
        hours = max(abs((movement.at - last[0]).total_seconds()), 1.0) / 3600  # either order: clocks differ
        if km > rule.min_distance_km and km / hours > rule.max_speed_kmh:
            return {"key": rule.key, "km": round(km, 1), "minutes": round(hours * 60, 1),
                    "kmh": round(km / hours), "max_speed_kmh": rule.max_speed_kmh}
    elif isinstance(rule, NewDeviceRule):
        if rule.key not in keys or movement.user_id is None:
            return None
        first = await history.first_seen(rule.key, keys[rule.key], str(movement.user_id))
        age_s = (movement.at - first).total_seconds() if first is not None else 0.0
        if age_s >= rule.recent_s and first is not None:
            return None
        share = None
        if rule.min_balance_share is not None:
            if not movement.balance_fen or movement.balance_fen <= 0:
                return None
            share = amount / movement.balance_fen
            if share < rule.min_balance_share:
                return None
        return {"key": rule.key, "first_seen_s_ago": round(age_s), "balance_share": share and round(share, 3)}
    elif isinstance(rule, NightRule):
        if rule.key not in keys or not in_hours(movement.at, rule.from_hour, rule.to_hour):
            return None
        if await history.first_seen(rule.key, keys[rule.key], None, rule.applies_to) is None:
            return {"key": rule.key, "hour": movement.at.astimezone(CHINA_TZ).hour}
    return None


def in_hours(at: datetime, from_hour: int, to_hour: int) -> bool:
    """Whether ``at`` falls in [from_hour, to_hour) China time (spanning midnight when from > to)."""
    hour = at.astimezone(CHINA_TZ).hour
    return from_hour <= hour < to_hour if from_hour <= to_hour else hour >= from_hour or hour < to_hour


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))

