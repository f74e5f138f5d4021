"""What the staff console shows of risk control, and the staff actions on it (``handlers/admin/risk.py``).

- the rule sets loaded, newest first (the newest is the one in force, ``services.risk.rules``);
- ``diff(a, b)``: what changed from version ``a`` to ``b``, rule by rule (added, removed, changed with
  each field's old and new value), computed from the stored sources;
- ``test(text)``: a candidate rule set (JSON pasted by an analyst) replayed over recent decisions
  (``services.risk.replay``, what ``python -m app risk rules test`` prints);
- shadow-rule hits: the decisions of the last ``SHADOW_DAYS`` whose ``reasons`` name a rule marked
  ``"shadow": true`` (``RiskEvent.reasons``, as the engine records them), counted per rule;
- the block and allow lists (a card's or ID number's blind index shown by its first characters only),
  changed through ``services.risk.lists`` with the member as the actor.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.clock import utcnow
from core.errors import NotFound, ValidationFailed
from models.risk import RiskEvent, RiskListEntry, RiskRuleSet
from services.risk import lists, replay, rules
from services.staff import sessions

SHADOW_DAYS = 7
SHADOW_SCAN_MAX = 50_000  # the newest decisions looked at for shadow hits
MAX_RULESET_BYTES = 256 * 1024
TEST_SINCE = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
MAX_DIFFERENCES = 200


class RuleSetMissing(NotFound):
    code, message = "RISK_RULE_SET_NOT_FOUND", "没有这个版本的规则集"


class CandidateInvalid(ValidationFailed):
    status, code, message = 400, "RISK_RULES_INVALID", "规则文件不符合格式"


@dataclass(frozen=True)
class RuleSetRow:
    version: int
    description: str
    digest: str
    loaded_by: str
    loaded_at: datetime
    rules: int
    shadow: int
    in_force: bool


@dataclass
class RuleChange:
    id: str
    fields: list[tuple[str, object, object]]  # (field, in a, in b)


@dataclass
class Diff:
    a: int
    b: int
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    changed: list[RuleChange] = field(default_factory=list)
    description: tuple[str, str] | None = None  # the rule set's own description, when it changed

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.changed or self.description)


async def rule_sets() -> list[RuleSetRow]:
    rows = await RiskRuleSet.all().order_by("-version")
    return [RuleSetRow(r.version, r.description, r.digest, r.loaded_by, r.loaded_at, len(r.source.get("rules", [])),
                       sum(rule.get("status") == "shadow" for rule in r.source.get("rules", [])), n == 0)
            for n, r in enumerate(rows)]


async def source_of(version: int) -> dict:
    row = await RiskRuleSet.get_or_none(version=version)
    if row is None:
        raise RuleSetMissing(f"没有第 {version} 版规则集")
    return row.source


def fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def diff_sources(a: dict, b: dict) -> Diff:
    """Rule by rule (by id): in ``b`` only (added), in ``a`` only (removed), in both with a field that
    differs (changed: every such field, a field absent on one side shown as ``None``)."""
    out = Diff(int(a.get("version", 0)), int(b.get("version", 0)))
    rules_a = {r["id"]: r for r in a.get("rules", [])}
    rules_b = {r["id"]: r for r in b.get("rules", [])}
    out.added = [rules_b[i] for i in rules_b if i not in rules_a]
    out.removed = [rules_a[i] for i in rules_a if i not in rules_b]
    for rule_id in rules_a:
        if rule_id not in rules_b:
            continue
        old, new = rules_a[rule_id], rules_b[rule_id]
        names = [k for k in old if k != "id"] + [k for k in new if k not in old and k != "id"]
        fields = [(k, old.get(k), new.get(k)) for k in names if old.get(k) != new.get(k)]
        if fields:
            out.changed.append(RuleChange(rule_id, fields))
    if a.get("description", "") != b.get("description", ""):
        out.description = (a.get("description", ""), b.get("description", ""))
    return out


async def diff(a: int, b: int) -> Diff:
    return diff_sources(await source_of(a), await source_of(b))


def rule_summary(rule: dict) -> str:
    """A rule's own fields (besides id, type, status, action), as ``name=value`` for a table cell."""
    return "; ".join(f"{k}={fmt(v)}" for k, v in rule.items() if k not in ("id", "type", "status", "action"))


def candidate(text: str) -> rules.RuleSetFile:
    """The pasted rule set, checked as ``rules.parse`` checks a file; bad JSON or an invalid set is 400."""
    if len(text.encode()) > MAX_RULESET_BYTES:
        raise CandidateInvalid(f"规则文件最大 {MAX_RULESET_BYTES // 1024} KB", field="rules")
    try:
        return rules.parse(text)
    except rules.RuleSetInvalid as exc:
        raise CandidateInvalid(exc.message, field="rules") from None


async def test(rule_set: rules.RuleSetFile, since: str) -> replay.ReplayReport:
    if since not in TEST_SINCE:
        raise ValidationFailed(f"回放区间只有 {', '.join(TEST_SINCE)}", field="since")
    return await replay.replay(rule_set, since=utcnow() - TEST_SINCE[since])


async def shadow_hits(days: int = SHADOW_DAYS) -> list[tuple[str, int]]:
    """Per shadow rule, how many decisions of the last ``days`` it fired on (newest ``SHADOW_SCAN_MAX``)."""
    counts: Counter = Counter()
    rows = await RiskEvent.filter(at__gte=utcnow() - timedelta(days=days), reasons__isnull=False) \
        .order_by("-id").limit(SHADOW_SCAN_MAX).values_list("reasons", flat=True)
    for reasons in rows:
        for reason in reasons or ():
            if isinstance(reason, dict) and reason.get("shadow"):
                counts[str(reason.get("rule"))] += 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class ListRow:
    id: int
    list: str
    value: str  # as shown (``lists.shown``)
    action: str
    note: str
    expires_at: datetime | None
    created_at: datetime


async def list_entries() -> list[ListRow]:
    rows = await RiskListEntry.all().order_by("list", "-id")
    now = utcnow()
    return [ListRow(e.id, e.list, lists.shown(e.list, e.value), e.action, e.note, e.expires_at, e.created_at)
            for e in rows if e.expires_at is None or e.expires_at > now]


async def put(ctx, current: sessions.Current, client: sessions.Client, *, list_name: str, value: str, action: str,
              note: str, expires_in_s: int | None, plate_color: str | None, reason: str) -> RiskListEntry:
    return await lists.put(ctx, list_name, value, action=action, note=note, expires_in_s=expires_in_s,
                           plate_color=plate_color, by=(current, client), reason=reason)


async def remove(current: sessions.Current, client: sessions.Client, entry_id: int, *, reason: str) -> None:
    if not await lists.remove(None, "", entry_id=entry_id, by=(current, client), reason=reason):
        raise NotFound("名单中没有这一条")
