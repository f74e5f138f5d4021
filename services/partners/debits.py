"""Partner debits of bound accounts, their refunds, and the daily statement.

A debit names the car by its ETC card or its plate and colour, and is booked on the account the active
binding names, through the ledger (``counts_as_outflow``: tolls, parking, fuel and car washes are
consumption, held to the Class II limits). It is idempotent on ``(partner, out_trade_no)``: the row is
inserted in the debit's own transaction, so of concurrent identical requests one books and the others
find its result; the same number with another request is ``OUT_TRADE_NO_CONFLICT``. A debit the
balance or a limit refuses is recorded (status ``arrears``, the refusal's code) and its amount added to
the binding's arrears in that same transaction; a retry answers the same refusal. Before any of that,
under the account lock, risk control decides (``services.risk.engine``): a debit it blocks or holds is
recorded as ``refused`` with the decision and its reasons (``RISK_BLOCKED`` / ``RISK_REVIEW``), neither
booked nor owed. A debit the ledger refuses because the account is restricted (a loss report, a freeze;
``ACCOUNT_RESTRICTED``) or closing or closed (``ACCOUNT_CLOSED``) is moved to ``refused`` in its own
transaction, likewise neither booked nor owed. The binding is read again under the account lock: a debit
whose binding was unbound meanwhile (before its account was closed) is refused as not bound.

A debit's status moves through the state machine (``MACHINE``), each move an audit event in the hash
chain in the transaction that does it: booking refused (``succeeded`` to ``arrears``, or to ``refused`` for
a restricted or closed account, in the debit's own transaction), and arrears paid by WeChat Pay (``arrears`` to ``settled``, ``services.payments.orders``).
Its creation, booked or refused by risk control, is not a move. Each category is booked as its own
ledger entry kind (``DEBIT_KINDS``), and a refund as the refund of that category (``REFUND_KINDS``).

A refund credits the account (booked whatever the account's status: it returns money that was taken),
idempotent on ``(partner, out_refund_no)``. Only a debit that was booked (``succeeded``) can be refunded:
one refused by risk control or left in arrears moved nothing, and arrears settled by WeChat Pay are
refunded the way they were paid, not into the account. The refunds of a debit never add up to more than
it (the debit row is locked while one is booked), and a refund is held to the balance cap like any
credit (``BALANCE_CAP_EXCEEDED``: a Class III account never holds more than its cap).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from core.clock import CHINA_TZ, china_day, utcnow
from core.errors import AppError, Conflict, NotFound
from models.accounts import EntryDirection, EntryKind
from models.etc import BindingStatus, EtcBinding
from models.partners import DebitStatus, PartnerDebit, PartnerRefund
from services.accounts import ledger
from services.accounts.ledger import AccountClosed, AccountRestricted, InsufficientFunds, LimitExceeded
from services.context import ServiceContext
from services.db import atomic
from services.etc import bindings, vehicles
from services.idempotency import fingerprint
from services.notifications import notices
from services.partners.auth import Caller, require_scope
from services.risk import engine as risk
from services.state_machine import Machine, transition

CATEGORY_SCOPES = {"toll": "etc:debit", "parking": "parking:debit", "fuel": "fuel:debit", "carwash": "carwash:debit"}
DEBIT_SCOPES = tuple(CATEGORY_SCOPES.values())
READ_SCOPES = (*DEBIT_SCOPES, "etc:read")
DEBIT_KINDS = {"toll": EntryKind.TOLL, "parking": EntryKind.PARKING, "fuel": EntryKind.FUEL,
               "carwash": EntryKind.CARWASH}
REFUND_KINDS = {"toll": EntryKind.TOLL_REFUND, "parking": EntryKind.PARKING_REFUND, "fuel": EntryKind.FUEL_REFUND,
                "carwash": EntryKind.CARWASH_REFUND}

D = DebitStatus
MACHINE = Machine(
    entity="partner_debit",
    allowed={
        D.SUCCEEDED: frozenset({D.ARREARS,  # the ledger refused the booking (balance or limit), same transaction
                                D.REFUSED}),  # the account is restricted or closed: nothing booked, nothing owed
        D.ARREARS: frozenset({D.SETTLED}),  # the customer paid the arrears through WeChat Pay
    },
)


class OutTradeNoConflict(Conflict):
    code, message = "OUT_TRADE_NO_CONFLICT", "该 out_trade_no 已用于另一笔扣款"


class OutRefundNoConflict(Conflict):
    code, message = "OUT_REFUND_NO_CONFLICT", "该 out_refund_no 已用于另一笔退款"


class DebitNotFound(NotFound):
    code, message = "DEBIT_NOT_FOUND", "扣款不存在"


class DebitNotRefundable(Conflict):
    code, message = "DEBIT_NOT_REFUNDABLE", "该扣款未成功入账，不能退款"


class RefundExceedsDebit(AppError):
    status, code, message = 422, "REFUND_EXCEEDS_DEBIT", "退款金额超过可退金额"


class VehicleNotBound(NotFound):
    code, message = "BINDING_NOT_FOUND", "该 ETC 卡或车辆未绑定代扣"


@dataclass(frozen=True)
class DebitResult:
    debit: PartnerDebit
    binding: EtcBinding
    replayed: bool


async def _binding_for(ctx: ServiceContext, fields: dict) -> EtcBinding:
    if fields.get("card_number"):
        found = await EtcBinding.get_or_none(card_key=bindings.card_index(ctx, fields["card_number"]))
    else:
        found = await EtcBinding.get_or_none(plate_key=vehicles.plate_key(fields["plate_number"], fields["plate_color"]))
    if found is None or found.status == BindingStatus.UNBOUND:
        raise VehicleNotBound()
    if found.status != BindingStatus.ACTIVE:
        raise bindings.BindingNotActive()
    return found


async def _replay(caller: Caller, out_trade_no: str, digest: str) -> DebitResult | None:
    found = await PartnerDebit.get_or_none(partner_id=caller.partner.id, out_trade_no=out_trade_no)
    if found is None:
        return None
    if found.request_hash != digest:
        raise OutTradeNoConflict(field="out_trade_no")
    return DebitResult(found, await EtcBinding.get(id=found.binding_id), True)


async def debit(ctx: ServiceContext, caller: Caller, fields: dict) -> DebitResult:
    """Book the debit, or find the one booked under this ``out_trade_no`` (``replayed``)."""
    require_scope(caller, CATEGORY_SCOPES[fields["category"]])
    digest = fingerprint(fields, compact=False)
    found = await _replay(caller, fields["out_trade_no"], digest)
    if found is not None:
        return found
    binding = await _binding_for(ctx, fields)
    now = utcnow()

    async def work(conn: BaseDBAsyncClient) -> PartnerDebit:
        # The account row first (the ledger's lock order): inserting the debit takes a shared lock on its
        # binding row (the foreign key), and a refusal then updates that row; taken in the other order,
        # concurrent debits of one binding deadlock on it.
        await ledger.locked_account(conn, binding.account_id)
        # The binding read again under that lock: one unbound meanwhile (and its account perhaps closing,
        # which holds the same lock) refuses the debit, nothing recorded, as if it had been read after.
        # A locking read, as every read before risk control's lock row is: on MySQL a plain read here would
        # fix the transaction's snapshot, and the velocity counts read after that lock would miss debits
        # committed meanwhile (a limit broken under concurrency: test_risk's shared-key test).
        current = await EtcBinding.filter(id=binding.id).select_for_update().using_db(conn).first()
        if current.status == BindingStatus.UNBOUND:
            raise VehicleNotBound()
        if current.status != BindingStatus.ACTIVE:
            raise bindings.BindingNotActive()
        # risk control decides under the account lock, before any fen moves (velocity counted exactly)
        location = fields.get("location")
        decision = await risk.decide(conn, risk.Movement(
            "partner_debit", now, fields["amount_fen"], account_id=binding.account_id, user_id=binding.user_id,
            category=fields["category"], reference=f"{caller.partner.app_id}:{fields['out_trade_no']}",
            values={"etc_card": binding.card_key, "plate": binding.plate_key, "merchant": fields["merchant"],
                    "partner": caller.partner.app_id},
            location=(location["lat"], location["lng"]) if location else None))
        refusal = decision.refusal if decision is not None else None
        row = await PartnerDebit.create(
            partner_id=caller.partner.id, out_trade_no=fields["out_trade_no"], request_hash=digest,
            binding_id=binding.id, account_id=binding.account_id, category=fields["category"],
            amount_fen=fields["amount_fen"], status=DebitStatus.REFUSED if refusal else DebitStatus.SUCCEEDED,
            refusal_code=refusal.code if refusal else None, merchant=fields["merchant"],
            detail=fields.get("detail"), occurred_at=fields["occurred_at"], booked_at=now,
            booked_day=china_day(now),
            risk_decision=decision and decision.decision, risk_version=decision and decision.version,
            risk_reasons=decision and decision.reasons, using_db=conn)
        if refusal:  # recorded with its reasons; nothing booked, nothing owed
            return row
        try:
            await ledger.post(conn, binding.account_id, direction=EntryDirection.DEBIT, kind=DEBIT_KINDS[row.category],
                              amount_fen=row.amount_fen, reference=f"PD{row.id}", counterparty=row.merchant,
                              counts_as_outflow=True)
            await notices.debit_booked(ctx, conn, row, binding.user_id)  # the holder told, once per debit
        except (AccountRestricted, AccountClosed) as exc:
            # A loss report, a freeze, a closed account: refused, neither booked nor owed (the partner is
            # answered the code, and the same on every retry).
            row = (await transition(conn, MACHINE, PartnerDebit, row.id, D.REFUSED,
                                    actor=f"partner:{caller.partner.app_id}", reason=exc.code,
                                    updates={"refusal_code": exc.code}, locked=row, audit_data=audited(row))).obj
        except (InsufficientFunds, LimitExceeded) as exc:
            # Nothing was written by the refusal: record it, and what is now owed on the binding.
            # The row was inserted by this transaction, which holds it: moved as it stands.
            row = (await transition(conn, MACHINE, PartnerDebit, row.id, D.ARREARS,
                                    actor=f"partner:{caller.partner.app_id}", reason=exc.code,
                                    updates={"refusal_code": exc.code}, locked=row, audit_data=audited(row))).obj
            await EtcBinding.filter(id=binding.id).using_db(conn).update(arrears_fen=F("arrears_fen") + row.amount_fen)
            await notices.arrears(ctx, conn, row, binding.user_id)  # with the move into arrears: once
        return row

    try:
        row = await atomic(work)
    except IntegrityError:
        # a concurrent request under the same number committed first: answer what it answered
        found = await _replay(caller, fields["out_trade_no"], digest)
        if found is None:
            raise
        return found
    return DebitResult(row, binding, False)  # what the answer shows of the binding (card, plate) cannot change


async def get(caller: Caller, out_trade_no: str) -> DebitResult:
    found = await PartnerDebit.get_or_none(partner_id=caller.partner.id, out_trade_no=out_trade_no)
    if found is None:
        raise DebitNotFound()
    return DebitResult(found, await EtcBinding.get(id=found.binding_id), False)


@dataclass(frozen=True)
class RefundResult:
    refund: PartnerRefund
    debit: PartnerDebit
    binding: EtcBinding
    replayed: bool


async def _refund_replay(caller: Caller, out_refund_no: str, digest: str) -> RefundResult | None:
    found = await PartnerRefund.get_or_none(partner_id=caller.partner.id, out_refund_no=out_refund_no)
    if found is None:
        return None
    if found.request_hash != digest:
        raise OutRefundNoConflict(field="out_refund_no")
    debit_row = await PartnerDebit.get(id=found.debit_id)
    return RefundResult(found, debit_row, await EtcBinding.get(id=debit_row.binding_id), True)


def _refund_hash(out_trade_no: str, fields: dict) -> str:
    # Hashed under the number's first name (``refund_no``), so that a refund booked before the field was
    # renamed still answers its retry instead of a conflict.
    named = {("refund_no" if k == "out_refund_no" else k): v for k, v in fields.items()}
    return fingerprint({"out_trade_no": out_trade_no, **named}, compact=False)


async def refund(ctx: ServiceContext, caller: Caller, out_trade_no: str, fields: dict) -> RefundResult:
    digest = _refund_hash(out_trade_no, fields)
    found = await _refund_replay(caller, fields["out_refund_no"], digest)
    if found is not None:
        return found
    target = await PartnerDebit.get_or_none(partner_id=caller.partner.id, out_trade_no=out_trade_no)
    if target is None:
        raise DebitNotFound()
    require_scope(caller, CATEGORY_SCOPES[target.category])

    async def work(conn: BaseDBAsyncClient) -> tuple[PartnerRefund, PartnerDebit]:
        row = await PartnerDebit.filter(id=target.id).select_for_update().using_db(conn).first()
        if row.status != DebitStatus.SUCCEEDED:  # only money booked on the account goes back to it
            raise DebitNotRefundable()
        if row.refunded_fen + fields["amount_fen"] > row.amount_fen:
            raise RefundExceedsDebit(f"最多还可退 {row.amount_fen - row.refunded_fen} 分", field="amount_fen")
        now = utcnow()
        made = await PartnerRefund.create(
            partner_id=caller.partner.id, debit_id=row.id, out_refund_no=fields["out_refund_no"], request_hash=digest,
            amount_fen=fields["amount_fen"], reason=fields.get("reason"), refunded_at=now,
            booked_day=china_day(now), using_db=conn)
        await ledger.post(conn, row.account_id, direction=EntryDirection.CREDIT, kind=REFUND_KINDS[row.category],
                          amount_fen=made.amount_fen, reference=f"PR{made.id}", counterparty=row.merchant,
                          settling=True, reversal=True)
        row.refunded_fen += made.amount_fen
        await PartnerDebit.filter(id=row.id).using_db(conn).update(refunded_fen=row.refunded_fen)
        return made, row

    try:
        made, row = await atomic(work)
    except IntegrityError:
        found = await _refund_replay(caller, fields["out_refund_no"], digest)
        if found is None:
            raise
        return found
    return RefundResult(made, row, await EtcBinding.get(id=row.binding_id), False)


def audited(d: PartnerDebit) -> dict:
    """What a debit's audit event names of it."""
    return {"partner_id": d.partner_id, "out_trade_no": d.out_trade_no, "amount_fen": d.amount_fen}


# -- statements --------------------------------------------------------------------------------------

STATEMENT_COLUMNS = ("type", "out_trade_no", "out_refund_no", "category", "status", "amount_fen", "occurred_at",
                     "booked_at", "card_number_masked", "plate_number", "plate_color", "merchant")


def _iso(at: datetime) -> str:
    return at.astimezone(CHINA_TZ).isoformat(timespec="seconds")


async def statement(caller: Caller, day: date) -> str:
    """The partner's debits and refunds booked on ``day`` (China Standard Time), as CSV, oldest first."""
    debits = await PartnerDebit.filter(partner_id=caller.partner.id, booked_day=day).order_by("id")
    refunds = await PartnerRefund.filter(partner_id=caller.partner.id, booked_day=day).order_by("id")
    needed = {d.id for d in debits} | {r.debit_id for r in refunds}
    by_id = {d.id: d for d in await PartnerDebit.filter(id__in=list(needed))} if needed else {}
    binding_ids = {d.binding_id for d in by_id.values()}
    by_binding = {b.id: b for b in await EtcBinding.filter(id__in=list(binding_ids))} if binding_ids else {}
    rows = []
    for d in debits:
        b = by_binding[d.binding_id]
        plate, color = vehicles.plate_parts(b.plate)
        rows.append((d.booked_at, d.id, 0, ["debit", d.out_trade_no, "", d.category, str(d.status), d.amount_fen,
                                              _iso(d.occurred_at), _iso(d.booked_at), b.card_masked, plate, color,
                                              d.merchant]))
    for r in refunds:
        d = by_id[r.debit_id]
        b = by_binding[d.binding_id]
        plate, color = vehicles.plate_parts(b.plate)
        rows.append((r.refunded_at, r.id, 1, ["refund", d.out_trade_no, r.out_refund_no, d.category, "succeeded",
                                                r.amount_fen, _iso(d.occurred_at), _iso(r.refunded_at), b.card_masked,
                                                plate, color, d.merchant]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATEMENT_COLUMNS)
    for _, _, _, row in sorted(rows, key=lambda r: (r[0], r[2], r[1])):
        writer.writerow(row)
    return out.getvalue()


def statement_day_ok(day: date) -> bool:
    """A statement exists for a day that has begun in China (not for the future)."""
    return day <= china_day(utcnow())
