"""The audit chain as staff read it in the console (``/admin/audit``): newest first, a page at a time
(keyset on ``seq``), filtered by actor, action prefix, entity and a time range; and the chain's check
run from the console, itself an audit event (``staff.audit_verified``).

Events' ``data`` hold masked values only (``services.audit``), so they are shown as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from core.clock import CHINA_TZ
from core.errors import ValidationFailed
from models.audit import AuditEvent
from services import audit
from services.db import atomic
from services.staff import fields, sessions

PAGE = 50
EXPORT_MAX = 5000  # rows in one CSV export; narrow the filters for more
MAX_SEQ = 2**63


@dataclass(frozen=True)
class Filters:
    actor: str = ""  # exact: "staff:12", "user:42", "system"
    action: str = ""  # a prefix: "staff." or "staff.login"
    entity_type: str = ""
    entity_id: str = ""
    since: date | None = None  # China Standard Time days, both included
    until: date | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in {"actor": self.actor, "action": self.action, "entity_type": self.entity_type,
                                  "entity_id": self.entity_id, "since": self.since and self.since.isoformat(),
                                  "until": self.until and self.until.isoformat()}.items() if v}


def parse_filters(args: dict) -> Filters:
    """The search form's fields (query string), bounded as their columns are; 422 on a bad one."""
    found = Filters(actor=fields.text(args, "actor", 64), action=fields.text(args, "action", 64),
                    entity_type=fields.text(args, "entity_type", 32), entity_id=fields.text(args, "entity_id", 64),
                    since=fields.day(args, "since"), until=fields.day(args, "until"))
    if found.entity_id and not found.entity_type:
        raise ValidationFailed("按对象编号查询时须同时填写对象类型", field="entity_type")
    if found.since and found.until and found.since > found.until:
        raise ValidationFailed("起始日期不能晚于结束日期", field="since")
    return found


def parse_before(value: str | None) -> int | None:
    """The keyset cursor: events with a smaller ``seq`` than this."""
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 19) or not 1 <= int(value) < MAX_SEQ:
        raise ValidationFailed("分页参数无效", field="before")
    return int(value)


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=CHINA_TZ).astimezone(timezone.utc)


def _query(f: Filters):
    query = AuditEvent.all()
    if f.actor:
        query = query.filter(actor=f.actor)
    if f.action:
        query = query.filter(action__startswith=f.action)
    if f.entity_type:
        query = query.filter(entity_type=f.entity_type)
    if f.entity_id:
        query = query.filter(entity_id=f.entity_id)
    if f.since:
        query = query.filter(at__gte=_start(f.since))
    if f.until:
        query = query.filter(at__lt=_start(f.until + timedelta(days=1)))
    return query


@dataclass(frozen=True)
class Row:
    seq: int
    at: str  # China Standard Time, to the second
    actor: str
    action: str
    entity_type: str
    entity_id: str
    data: str  # the event's (masked) data as JSON

    def csv(self) -> list:
        return [self.seq, self.at, self.actor, self.action, self.entity_type, self.entity_id, self.data]


CSV_HEADER = ("seq", "时间（北京时间）", "操作者", "动作", "对象类型", "对象编号", "数据")


def _row(ev: AuditEvent) -> Row:
    return Row(ev.seq, ev.at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"), ev.actor, ev.action,
               ev.entity_type, ev.entity_id, json.dumps(ev.data, ensure_ascii=False, sort_keys=True))


async def search(f: Filters, *, before: int | None = None, limit: int | None = None) -> tuple[list[Row], int | None]:
    """A page of the matching events, newest first, and the ``before`` of the next page (None at the end)."""
    limit = PAGE if limit is None else limit
    query = _query(f)
    if before is not None:
        query = query.filter(seq__lt=before)
    events = await query.order_by("-seq").limit(limit + 1)
    more = len(events) > limit
    events = events[:limit]
    return [_row(ev) for ev in events], (events[-1].seq if more and events else None)


async def export(f: Filters) -> list[Row]:
    rows, _ = await search(f, limit=EXPORT_MAX)
    return rows


async def verify(current: sessions.Current, client: sessions.Client) -> audit.ChainReport:
    """Walk the whole chain (``services.audit.verify``) and record that this member did, with the result."""
    report = await audit.verify()
    data = {"ok": report.ok, "events": report.events}
    if not report.ok:
        data.update(problem=(report.problem or "")[:200], broken_seq=report.seq, broken_event_id=report.event_id)
    await atomic(lambda conn: sessions.record(conn, current, client, "staff.audit_verified", entity_type="audit",
                                              entity_id="chain", **data))
    return report
