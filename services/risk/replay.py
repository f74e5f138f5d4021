"""Running a rule set over many movements at once, in memory: ``rules test`` and simulations.

``replay`` reads the decisions recorded since a moment (``RiskEvent``), with enough history before it
for the candidate's longest look-back, and decides each again with the candidate rule set, in time
order, through the same ``engine.evaluate`` the live path uses. The history is what happened (what was
counted stays counted), the lists are today's. It reports every movement the candidate would have
decided differently.

``simulate`` decides a stream of movements that never happened (generated traffic): each one's own
decision says whether it counts for the next.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tortoise.expressions import Q

from core.clock import utcnow
from models.risk import RiskEvent, RiskListEntry
from services.risk import engine
from services.risk.engine import Decision, Movement
from services.risk.history import MemoryHistory, Seen, keys_of
from services.risk.rules import (NewDeviceRule, NightRule, RuleSetFile, TravelRule, UnusualAmountRule, VelocityRule,
                                 WINDOWS)

BATCH = 5000
FIRST_SEEN_DAYS = 90  # a replay's "first seen" looks back this far (live, the whole history)


def lookback(rule_set: RuleSetFile) -> timedelta:
    """How far back before the first replayed movement the candidate's rules look."""
    needed = max(WINDOWS.values())
    for rule in rule_set.rules:
        if isinstance(rule, (VelocityRule, TravelRule)):
            needed = max(needed, WINDOWS[rule.window])
        elif isinstance(rule, UnusualAmountRule):
            needed = max(needed, rule.history_days * 86400)
        elif isinstance(rule, (NewDeviceRule, NightRule)):
            needed = max(needed, FIRST_SEEN_DAYS * 86400)  # "never seen before": as far back as a replay looks
    return timedelta(seconds=needed)


def listed_in(entries: dict[tuple[str, str], str], values: dict[str, str]) -> dict[str, str]:
    """``engine.listed_now`` over lists held in memory."""
    found: dict[str, str] = {}
    for name, value in values.items():
        action = entries.get((name, value))
        if action is not None and found.get(name) != "block":
            found[name] = action
    return found


async def lists_now() -> dict[tuple[str, str], str]:
    entries: dict[tuple[str, str], str] = {}
    for entry in await RiskListEntry.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=utcnow())):
        entries[(entry.list, entry.value)] = entry.action
    return entries


def movement_of(row: RiskEvent) -> Movement:
    keys = keys_of(row)
    values = {k: v for k, v in keys.items() if k not in ("account", "user")}
    if row.id_index is not None:
        values["id"] = row.id_index
    return Movement(row.subject, row.at, row.amount_fen, account_id=row.account_id, user_id=row.user_id,
                    category=row.category, reference=row.reference, values=values,
                    location=(row.lat, row.lng) if row.lat is not None and row.lng is not None else None,
                    balance_fen=row.balance_fen)


def seen_of(movement: Movement, ident: int) -> Seen:
    return Seen(ident, movement.subject, movement.at, movement.amount_fen, movement.category, movement.keys(),
                *(movement.location or (None, None)))


@dataclass
class Difference:
    event_id: int
    subject: str
    reference: str
    at: datetime
    recorded: str
    candidate: str
    rules: list[str]


@dataclass
class ReplayReport:
    since: datetime
    replayed: int = 0
    by_subject: Counter = field(default_factory=Counter)
    recorded: Counter = field(default_factory=Counter)
    candidate: Counter = field(default_factory=Counter)
    shadow_fired: Counter = field(default_factory=Counter)  # rule id -> movements it would have acted on
    differences: list[Difference] = field(default_factory=list)


async def replay(candidate: RuleSetFile, *, since: datetime, until: datetime | None = None) -> ReplayReport:
    until = until or utcnow()
    start = since - lookback(candidate)
    entries = await lists_now()
    history = MemoryHistory()
    report = ReplayReport(since)
    last = (start, 0)
    while True:  # in batches, by (at, id): tens of thousands of rows without holding them all
        rows = await RiskEvent.filter(Q(at__gt=last[0]) | Q(at=last[0], id__gt=last[1]), at__lte=until) \
            .order_by("at", "id").limit(BATCH)
        for row in rows:
            movement = movement_of(row)
            if row.at >= since:
                decision = await engine.evaluate(candidate, movement, history, listed_in(entries, movement.values))
                _count(report, row, decision)
            history.add(seen_of(movement, row.id), counted=row.counted)
        if len(rows) < BATCH:
            return report
        last = (rows[-1].at, rows[-1].id)


def _count(report: ReplayReport, row: RiskEvent, decision: Decision) -> None:
    recorded = row.decision or "allow"
    report.replayed += 1
    report.by_subject[row.subject] += 1
    report.recorded[recorded] += 1
    report.candidate[decision.decision] += 1
    for reason in decision.reasons:
        if reason["shadow"]:
            report.shadow_fired[reason["rule"]] += 1
    if decision.decision != recorded:
        report.differences.append(Difference(row.id, row.subject, row.reference, row.at, recorded, decision.decision,
                                             [r["rule"] for r in decision.reasons if not r["shadow"]]))


async def simulate(rule_set: RuleSetFile, movements: Iterable[Movement],
                   lists: dict[tuple[str, str], str] | None = None) -> list[Decision]:
    """Decide ``movements`` (in time order) as if each had happened: one decision per movement."""
    history = MemoryHistory()
    decisions = []
    for n, movement in enumerate(movements):
        decision = await engine.evaluate(rule_set, movement, history, listed_in(lists or {}, movement.values))
        history.add(seen_of(movement, n), counted=engine.counted(movement.subject, decision.decision))
        decisions.append(decision)
    return decisions
