"""The decision point: every movement asks ``decide`` before any fen moves, inside its own transaction.

``decide`` evaluates the rule set in force against a ``Movement`` and answers ``allow``, ``review``
(hold) or ``block``, with the rules that fired and the values they saw. The strongest action of the
active rules that fired wins; shadow rules are evaluated and recorded (``"shadow": true``) but never
change the answer. A value on the allow list (card, plate, merchant, partner) allows the movement
whatever the other rules say; one on the block list fires the list rules that name its list.

Velocity is counted from the movements themselves, in the caller's transaction and under the lock the
caller already holds on the account (partner debits lock the account row before anything else), so
concurrent movements of one account are counted one after the other: with a limit of N, exactly N get
through, on any number of workers and hosts. Without a rule set in force nothing is evaluated and
nothing is recorded (``decision`` is None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.functions import Count, Sum

from core.clock import utcnow
from core.errors import AppError
from models.partners import DebitStatus, PartnerDebit
from models.risk import RiskListEntry
from services.risk import rules as rules_
from services.risk.rules import AmountRule, ListRule, VelocityRule

STRENGTH = {"allow": 0, "review": 1, "block": 2}


class RiskBlocked(AppError):
    status, code, message = 403, "RISK_BLOCKED", "交易存在风险，已被拒绝"


class RiskReview(AppError):
    status, code, message = 403, "RISK_REVIEW", "交易需人工审核，暂未处理"


@dataclass(frozen=True)
class Movement:
    subject: str  # rules.SUBJECTS
    account_id: int
    amount_fen: int
    at: datetime
    category: str | None = None
    values: dict[str, str] = field(default_factory=dict)  # list name -> the movement's value (card by blind index)


@dataclass(frozen=True)
class Decision:
    decision: str  # allow | review | block
    version: int
    reasons: list[dict]  # {"rule", "type", "action", "shadow", ...values}

    @property
    def refusal(self) -> type[AppError] | None:
        return {"block": RiskBlocked, "review": RiskReview}.get(self.decision)


async def decide(conn: BaseDBAsyncClient, movement: Movement) -> Decision | None:
    rule_set = await rules_.in_force()
    if rule_set is None:
        return None
    applicable = [r for r in rule_set.rules if movement.subject in r.applies_to]
    listed = await _listed(conn, movement)
    if any(action == "allow" for action in listed.values()):
        allowed = sorted(name for name, action in listed.items() if action == "allow")
        return Decision("allow", rule_set.version, [{"rule": "allow-list", "type": "list", "action": "allow",
                                                      "shadow": False, "lists": allowed}])
    reasons: list[dict] = []
    counted: dict[int, tuple[int, int]] = {}
    for rule in applicable:
        fired: dict | None = None
        if isinstance(rule, AmountRule):
            if (rule.categories is None or movement.category in rule.categories) and movement.amount_fen > rule.max_amount_fen:
                fired = {"amount_fen": movement.amount_fen, "max_amount_fen": rule.max_amount_fen}
        elif isinstance(rule, ListRule):
            hits = sorted(name for name in rule.lists if listed.get(name) == "block")
            if hits:
                fired = {"lists": hits}
        elif isinstance(rule, VelocityRule):
            seconds = rules_.WINDOWS[rule.window]
            if seconds not in counted:
                counted[seconds] = await _account_velocity(conn, movement, seconds)
            count, amount = counted[seconds]
            count, amount = count + 1, amount + movement.amount_fen  # this one included
            if (rule.max_count is not None and count > rule.max_count) or (
                    rule.max_amount_fen is not None and amount > rule.max_amount_fen):
                fired = {"key": rule.key, "window": rule.window, "count": count, "amount_fen": amount,
                         "max_count": rule.max_count, "max_amount_fen": rule.max_amount_fen}
        if fired is not None:
            reasons.append({"rule": rule.id, "type": rule.type, "action": rule.action,
                            "shadow": rule.status == "shadow", **fired})
    enforced = [r["action"] for r in reasons if not r["shadow"]]
    decision = max(enforced, key=STRENGTH.__getitem__, default="allow")
    return Decision(decision, rule_set.version, reasons)


async def _listed(conn: BaseDBAsyncClient, movement: Movement) -> dict[str, str]:
    """``{list: action}`` for the movement's values on a list now (a block wins over an allow)."""
    if not movement.values:
        return {}
    now = utcnow()
    query = Q()
    for name, value in movement.values.items():
        query |= Q(list=name, value=value)
    found: dict[str, str] = {}
    for entry in await RiskListEntry.filter(query).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)).using_db(conn):
        if found.get(entry.list) != "block":
            found[entry.list] = entry.action
    return found


async def _account_velocity(conn: BaseDBAsyncClient, movement: Movement, seconds: int) -> tuple[int, int]:
    """Movements of the account within the window before this one: how many, and how much."""
    since = movement.at - timedelta(seconds=seconds)
    rows = await PartnerDebit.filter(account_id=movement.account_id, booked_at__gt=since,
                                     status__in=[DebitStatus.SUCCEEDED, DebitStatus.ARREARS, DebitStatus.SETTLED]) \
        .using_db(conn).annotate(n=Count("id"), total=Sum("amount_fen")).values("n", "total")
    row = rows[0] if rows else {}
    return int(row.get("n") or 0), int(row.get("total") or 0)
