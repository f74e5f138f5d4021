"""What waits for a reviewer: top-ups and withdrawals held by risk control, and partner debits it
refused, each with the rules that fired and the values they saw.

Approving a held transfer is a maker-checker action above ``ADMIN_FOUR_EYES_ABOVE_FEN``
(``services.staff.actions``, ``transfer.approve``, through ``proposals.act``); rejecting one releases the
money and needs one person. A refused debit cannot be taken back (the partner was answered): a reviewer
records a verdict on it — confirmed, or a false positive that tunes the rules — once, with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import utcnow
from core.errors import Conflict, NotFound, ValidationFailed
from models.accounts import Account, CardTransfer
from models.enums import DebitStatus, TransferDirection, TransferStatus
from models.partners import Partner, PartnerDebit
from models.risk import RiskEvent
from services.accounts import funding
from services.db import atomic
from services.staff.actions import masked_number
from services.staff.proposals import reason_of
from services.staff.sessions import Client, Current, record

VERDICTS = {"confirmed": "确认风险", "false_positive": "误拦截"}


class AlreadyReviewed(Conflict):
    code, message = "ALREADY_REVIEWED", "该笔扣款已有审核结论"


@dataclass(frozen=True)
class Fired:
    rule: str
    type: str
    shadow: bool
    values: dict  # what the rule saw (counts, amounts, keys by name; no personal data)


@dataclass(frozen=True)
class HeldItem:
    id: int
    kind: str  # 充值 | 提现
    amount_fen: int
    account: str  # masked number
    at: datetime
    fired: list[Fired]


@dataclass(frozen=True)
class RefusedItem:
    id: int
    partner: str
    merchant: str
    category: str
    amount_fen: int
    account: str
    at: datetime
    fired: list[Fired]
    verdict: str | None
    reviewed_by: str | None
    note: str | None


def _fired(reasons: list | None) -> list[Fired]:
    out = []
    for r in reasons or []:
        values = {k: v for k, v in r.items() if k not in ("rule", "type", "shadow", "action")}
        out.append(Fired(str(r.get("rule", "?")), str(r.get("type", "?")), bool(r.get("shadow")), values))
    return out


async def _numbers(account_ids: set[int]) -> dict[int, str]:
    rows = await Account.filter(id__in=list(account_ids)).values_list("id", "number") if account_ids else []
    return {i: masked_number(n) for i, n in rows}


async def held(limit: int = 100) -> list[HeldItem]:
    transfers = await CardTransfer.filter(status=TransferStatus.HELD).order_by("id").limit(limit)
    numbers = await _numbers({t.account_id for t in transfers})
    events = {e.reference: e for e in await RiskEvent.filter(reference__in=[t.request_id for t in transfers])
              .order_by("id")} if transfers else {}
    return [HeldItem(t.id, "充值" if t.direction == TransferDirection.PULL else "提现", t.amount_fen,
                     numbers.get(t.account_id, "?"), t.created_at,
                     _fired(events[t.request_id].reasons if t.request_id in events else None))
            for t in transfers]


async def refused(*, unreviewed_only: bool = True, limit: int = 100) -> list[RefusedItem]:
    """Debits risk control refused (a rule blocked or held them), newest first."""
    query = PartnerDebit.filter(status=DebitStatus.REFUSED, risk_decision__in=["block", "review"])
    if unreviewed_only:
        query = query.filter(review_verdict=None)
    debits = await query.order_by("-id").limit(limit)
    numbers = await _numbers({d.account_id for d in debits if d.account_id})
    partners = dict(await Partner.filter(id__in=list({d.partner_id for d in debits})).values_list("id", "name")) \
        if debits else {}
    return [RefusedItem(d.id, partners.get(d.partner_id, "?"), d.merchant, d.category, d.amount_fen,
                        numbers.get(d.account_id, "?"), d.booked_at, _fired(d.risk_reasons), d.review_verdict,
                        d.reviewed_by, d.review_note)
            for d in debits]


async def reject_held(ctx, me: Current, client: Client, transfer_id: int, reason: str) -> CardTransfer:
    """Release a held transfer (a top-up's reservation; a withdrawal's debit reversed), sending nothing."""
    reason = reason_of(reason)
    transfer = await CardTransfer.get_or_none(id=transfer_id)
    if transfer is None:
        raise funding.TransferNotFound()
    done = await funding.review_held(ctx, transfer_id, approve=False, actor=me.actor, note=reason)
    await atomic(lambda conn: record(conn, me, client, "staff.transfer_rejected", entity_type="card_transfer",
                                     entity_id=transfer_id, reason=reason, amount_fen=transfer.amount_fen,
                                     direction=str(transfer.direction)))
    return done


async def review_refused(me: Current, client: Client, debit_id: int, verdict: str, reason: str) -> PartnerDebit:
    """A reviewer's verdict on a debit risk control refused, once (409 after), audited."""
    if verdict not in VERDICTS:
        raise ValidationFailed("结论须为 confirmed 或 false_positive", field="verdict")
    reason = reason_of(reason)

    async def work(conn: BaseDBAsyncClient) -> PartnerDebit:
        debit = await PartnerDebit.filter(id=debit_id, status=DebitStatus.REFUSED).using_db(conn) \
            .select_for_update().first()
        if debit is None:
            raise NotFound("扣款不存在或未被拒绝")
        changed = await PartnerDebit.filter(id=debit_id, review_verdict=None).using_db(conn).update(
            review_verdict=verdict, reviewed_by=me.actor, reviewed_at=utcnow(), review_note=reason)
        if not changed:
            raise AlreadyReviewed()
        await record(conn, me, client, "risk.debit_reviewed", entity_type="partner_debit", entity_id=debit_id,
                     reason=reason, verdict=verdict, rules=[f.rule for f in _fired(debit.risk_reasons)])
        return await PartnerDebit.get(id=debit_id).using_db(conn)

    return await atomic(work)
