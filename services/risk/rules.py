"""Rule sets: the file an analyst writes, its schema, loading it, and the one in force.

A rule set is JSON (``docs/risk.md`` has a worked example; ``python -m app risk rules schema`` prints the
JSON Schema)::

    {"version": 2, "description": "…",
     "rules": [{"id": "debit-burst", "type": "velocity", "status": "active", "action": "review",
                "applies_to": ["partner_debit"], "key": "account", "window": "1m", "max_count": 5}, …]}

Each rule is ``active`` (it decides) or ``shadow`` (evaluated and recorded, never enforced), names the
action when it fires, ``review`` (hold) or ``block``, and the subjects it ``applies_to`` (``SUBJECTS``).
Rule types (``docs/risk.md`` describes each):

- ``velocity``: more than ``max_count`` movements, or more than ``max_amount_fen`` in all, for one
  ``key`` (account, user, bank_card, etc_card, plate, partner, merchant, device, ip) within ``window``
  (``1m``, ``1h``, ``24h``), this one included;
- ``amount``: one movement above ``max_amount_fen`` (for ``categories``, when given);
- ``unusual_amount``: above ``factor`` times the largest the account moved in that category over
  ``history_days``, once it has ``min_history`` of them;
- ``travel``: the plate (or ETC card) seen at two places farther apart than ``max_speed_kmh`` allows in
  the time between them;
- ``new_device``: a device (or IP) the user was first seen with less than ``recent_s`` ago, optionally
  only when the movement takes at least ``min_balance_share`` of the balance;
- ``night``: the first use of a key, between ``from_hour`` and ``to_hour`` China time;
- ``list``: a value of the movement (``lists``) is on the block list. A value on the allow list lets
  the movement through whatever the other rules say.

A fresh install puts the baseline (``risk/baseline.json``, ``RISK_BASELINE_FILE``) in force at its first
start, through the same audited load (``first_start``); production refuses to start with no rule set
in force, so running without rules takes an operator loading an empty one.

Loading checks the file against the schema, refuses a version not above the one in force, stores it
whole and records its SHA-256 in the audit hash chain, in one transaction. The engine reads the rule set
in force at most every ``CACHE_S`` seconds per process, so a load bites everywhere within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from core.errors import Conflict, ValidationFailed
from core.money import MAX_AMOUNT_FEN
from models.risk import RiskRuleSet
from services import audit
from services.db import atomic

SUBJECTS = ("partner_debit", "top_up", "withdrawal", "refund", "payment_order", "account_opening", "etc_binding")
KEYS = ("account", "user", "bank_card", "etc_card", "plate", "partner", "merchant", "device", "ip")
LISTS = ("id", "bank_card", "etc_card", "plate", "device", "ip", "merchant", "partner")
CATEGORIES = ("toll", "parking", "fuel", "carwash")
WINDOWS = {"1m": 60, "1h": 3600, "24h": 86400}
CACHE_S = 5.0

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: RuleId
    status: Literal["active", "shadow"]
    action: Literal["review", "block"]
    applies_to: list[Literal[SUBJECTS]] = Field(min_length=1)  # type: ignore[valid-type]
    description: str = Field(default="", max_length=200)


class VelocityRule(_Rule):
    type: Literal["velocity"]
    key: Literal[KEYS]  # type: ignore[valid-type]
    window: Literal[tuple(WINDOWS)]  # type: ignore[valid-type]
    max_count: int | None = Field(default=None, ge=0, le=10**6)
    max_amount_fen: int | None = Field(default=None, ge=0, le=MAX_AMOUNT_FEN)

    @model_validator(mode="after")
    def _a_limit(self) -> VelocityRule:
        if self.max_count is None and self.max_amount_fen is None:
            raise ValueError("a velocity rule needs max_count or max_amount_fen")
        return self


class AmountRule(_Rule):
    type: Literal["amount"]
    max_amount_fen: int = Field(ge=0, le=MAX_AMOUNT_FEN)
    categories: list[Literal[CATEGORIES]] | None = None  # type: ignore[valid-type]


class UnusualAmountRule(_Rule):
    type: Literal["unusual_amount"]
    factor: float = Field(gt=1, le=1000)
    history_days: int = Field(ge=1, le=90)
    min_history: int = Field(ge=1, le=10_000)
    min_amount_fen: int = Field(default=0, ge=0, le=MAX_AMOUNT_FEN)  # below this an amount is never unusual
    categories: list[Literal[CATEGORIES]] | None = None  # type: ignore[valid-type]


class TravelRule(_Rule):
    type: Literal["travel"]
    key: Literal["plate", "etc_card"] = "plate"
    max_speed_kmh: float = Field(gt=0, le=5000)
    min_distance_km: float = Field(default=0, ge=0, le=20_000)  # closer than this is never impossible
    window: Literal[tuple(WINDOWS)] = "24h"  # type: ignore[valid-type]  # how far back to look


class NewDeviceRule(_Rule):
    type: Literal["new_device"]
    key: Literal["device", "ip"] = "device"
    recent_s: int = Field(ge=0, le=90 * 86400)  # first seen with the user less than this ago: new
    min_balance_share: float | None = Field(default=None, gt=0, le=1)


class NightRule(_Rule):
    type: Literal["night"]
    key: Literal["account", "user", "bank_card", "etc_card", "plate", "device"]
    from_hour: int = Field(ge=0, le=23)  # China Standard Time; from 23 to 5 spans midnight
    to_hour: int = Field(ge=0, le=23)

    @model_validator(mode="after")
    def _some_hours(self) -> NightRule:
        if self.from_hour == self.to_hour:
            raise ValueError("a night rule needs from_hour and to_hour to differ")
        return self


class ListRule(_Rule):
    type: Literal["list"]
    lists: list[Literal[LISTS]] = Field(min_length=1)  # type: ignore[valid-type]


Rule = Annotated[VelocityRule | AmountRule | UnusualAmountRule | TravelRule | NewDeviceRule | NightRule | ListRule,
                 Field(discriminator="type")]


class RuleSetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    version: int = Field(ge=1, le=2**31 - 1)
    description: str = Field(default="", max_length=200)
    rules: list[Rule] = Field(max_length=500)

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSetFile:
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique")
        return self


class RuleSetInvalid(ValidationFailed):
    code, message = "RISK_RULES_INVALID", "规则文件不符合格式"


class RuleSetStale(Conflict):
    code, message = "RISK_RULES_STALE", "规则版本必须高于当前生效的版本"


def parse(text: str | bytes) -> RuleSetFile:
    try:
        return RuleSetFile.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise RuleSetInvalid(str(exc)[:500]) from None


def schema() -> dict:
    return RuleSetFile.model_json_schema()


def digest(rule_set: RuleSetFile) -> str:
    canonical = json.dumps(rule_set.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def newest_version() -> int | None:
    """The highest version loaded so far (a new one must be above it)."""
    newest = await RiskRuleSet.all().order_by("-version").first()
    return newest.version if newest is not None else None


async def load(rule_set: RuleSetFile, *, actor: str) -> RiskRuleSet:
    """Store ``rule_set`` as the one in force (its version above every loaded one), audited."""

    async def work(conn: BaseDBAsyncClient) -> RiskRuleSet:
        newest = await RiskRuleSet.all().using_db(conn).order_by("-version").select_for_update().first()
        if newest is not None and rule_set.version <= newest.version:
            raise RuleSetStale(f"当前生效的是第 {newest.version} 版", field="version")
        row = await RiskRuleSet.create(version=rule_set.version, description=rule_set.description,
                                       source=rule_set.model_dump(mode="json"), digest=digest(rule_set),
                                       loaded_by=actor[:64], using_db=conn)
        await audit.append(conn, actor=actor, action="risk.rules.loaded", entity_type="risk_rule_set",
                           entity_id=row.version, data={"digest": row.digest, "rules": len(rule_set.rules),
                                                        "shadow": sum(r.status == "shadow" for r in rule_set.rules)})
        return row

    row = await atomic(work)
    global _cached
    _cached = None
    return row


async def first_start(path: str) -> RiskRuleSet | None:
    """A fresh install's first start: when no rule set was ever loaded, put the file at ``path`` (the
    baseline) in force through ``load``, audited like an operator's load. Returns it; None when a rule
    set was loaded before (an empty one included), none is configured, or another instance won the race."""
    if not path or await RiskRuleSet.all().exists():
        return None
    text = await asyncio.to_thread(Path(path).read_bytes)
    try:
        return await load(parse(text), actor="system:first-start")
    except (RuleSetStale, IntegrityError):
        return None  # another server started at the same moment loaded it


_cached: tuple[float, RuleSetFile | None] | None = None  # (read at, the rule set in force)


async def in_force() -> RuleSetFile | None:
    """The newest rule set (None before any is loaded), read at most every ``CACHE_S`` s per process."""
    global _cached
    now = time.monotonic()
    if _cached is not None and now - _cached[0] < CACHE_S:
        return _cached[1]
    row = await RiskRuleSet.all().order_by("-version").first()
    current = RuleSetFile.model_validate(row.source) if row is not None else None
    _cached = (now, current)
    return current
