"""The sensitive staff actions: what maker-checker (``services.staff.proposals``) proposes, checks and
applies. Each action says who may propose and who may approve (permissions), how its parameters are
checked and normalised (``parse``: the exact parameters stored on the proposal, and a masked summary a
checker reads), whether four eyes are needed for these parameters, and how it is applied — always through
the domain's own service, never a copy of it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.errors import NotFound, ValidationFailed
from core.money import MAX_AMOUNT_FEN, yuan
from core.settings import Settings
from models.accounts import Account, CardTransfer
from models.enums import TransferDirection, TransferStatus
from models.partners import Partner
from models.payments import PaymentOrder
from services.context import ServiceContext
from services.staff.sessions import Client, Current


@dataclass(frozen=True)
class Applied:
    result: dict  # stored on the proposal and shown (masked, nothing secret)
    shown_once: dict | None = field(default=None)  # e.g. a new secret: in this answer only, never stored


Parse = Callable[[ServiceContext, dict], Awaitable[tuple[dict, str]]]
Apply = Callable[[ServiceContext, dict, Current, Client, str, "int | None"], Awaitable[Applied]]


def always(settings: Settings, params: dict) -> bool:
    return True


@dataclass(frozen=True)
class FormField:
    """One parameter as the console's proposal form asks for it (``/admin/proposals/new?action=…``)."""

    name: str
    label: str
    kind: str = "text"  # text | textarea | number | select
    options: tuple[tuple[str, str], ...] = ()  # (value, label) for a select
    required: bool = True


@dataclass(frozen=True)
class Action:
    name: str
    title: str  # what the console calls it
    propose: str  # the permission to propose it
    approve: str  # the permission to approve it
    parse: Parse
    apply: Apply
    four_eyes: Callable[[Settings, dict], bool] = always
    fields: tuple[FormField, ...] = ()


def _int(params: dict, name: str, lo: int = 1, hi: int = 2**63 - 1, *, required: bool = True) -> int | None:
    value = params.get(name)
    if value is None and not required:
        return None
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 20:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValidationFailed(f"「{name}」须为 {lo} 到 {hi} 的整数", field=name)
    return value


def _text(params: dict, name: str, max_len: int, *, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationFailed(f"请填写「{name}」", field=name)
        return None
    if not isinstance(value, str) or len(value.strip()) > max_len:
        raise ValidationFailed(f"「{name}」最多 {max_len} 个字符", field=name)
    return value.strip()


def masked_number(number: str) -> str:
    return f"{number[:4]} **** {number[-4:]}"


# -- unfreezing an account (the bank's fraud or judicial freeze) -------------------------------------------


async def _parse_unfreeze(ctx: ServiceContext, params: dict) -> tuple[dict, str]:
    from services.accounts import restrictions

    account_id = _int(params, "account_id")
    kind = params.get("kind")
    if kind not in restrictions.BANK_KINDS:
        raise ValidationFailed("冻结类型须为 fraud 或 judicial", field="kind")
    document = _text(params, "document", 64, required=False)
    account = await Account.get_or_none(id=account_id)
    if account is None:
        raise restrictions.AccountNotFound()
    code = restrictions.BANK_KINDS[kind]
    held = [r for r in (await restrictions.in_force([account_id]))[account_id]
            if r.code == code and (document is None or r.document_ref == document)]
    if not held:
        raise restrictions.RestrictionNotInForce()
    label = "欺诈冻结" if kind == "fraud" else "司法冻结"
    return ({"account_id": account_id, "kind": kind, "document": document},
            f"解除账户 {masked_number(account.number)} 的{label}" + (f"（文书 {document}）" if document else ""))


async def _apply_unfreeze(ctx: ServiceContext, params: dict, me: Current, client: Client, reason: str,
                          proposal_id: int | None) -> Applied:
    from services.accounts import restrictions

    done = await restrictions.unfreeze(params["account_id"], kind=params["kind"], reason=reason, by=me.actor,
                                       document_ref=params.get("document"))
    return Applied({"account_id": done.account.id, "status": str(done.account.status),
                    "restriction_id": done.restriction.id})


# -- approving a transfer held by risk control -------------------------------------------------------------


async def _parse_transfer(ctx: ServiceContext, params: dict) -> tuple[dict, str]:
    from services.accounts import funding

    transfer_id = _int(params, "transfer_id")
    transfer = await CardTransfer.get_or_none(id=transfer_id)
    if transfer is None:
        raise funding.TransferNotFound()
    if transfer.status != TransferStatus.HELD:
        raise funding.TransferNotHeld()
    account = await Account.get(id=transfer.account_id)
    what = "充值" if transfer.direction == TransferDirection.PULL else "提现"
    return ({"transfer_id": transfer_id, "amount_fen": transfer.amount_fen},
            f"放行被风控暂缓的{what} ¥{yuan(transfer.amount_fen)}（账户 {masked_number(account.number)}）")


def _above_threshold(settings: Settings, params: dict) -> bool:
    return params["amount_fen"] > settings.admin_four_eyes_above_fen


async def _apply_transfer(ctx: ServiceContext, params: dict, me: Current, client: Client, reason: str,
                          proposal_id: int | None) -> Applied:
    from services.accounts import funding

    note = reason if proposal_id is None else f"复核申请 #{proposal_id}：{reason}"
    transfer = await funding.review_held(ctx, params["transfer_id"], approve=True, actor=me.actor, note=note)
    return Applied({"transfer_id": transfer.id, "status": str(transfer.status)})


# -- refunding a paid device fee -------------------------------------------------------------------------


async def _parse_refund(ctx: ServiceContext, params: dict) -> tuple[dict, str]:
    from services.payments.refunds import NotRefundable, RefundExceedsPaid

    order_id = _int(params, "order_id")
    order = await PaymentOrder.get_or_none(id=order_id)
    if order is None:
        raise NotFound("订单不存在")
    left = order.amount_fen - order.refunded_fen
    amount = _int(params, "amount_fen", 1, MAX_AMOUNT_FEN, required=False)
    amount = left if amount is None else amount
    if left <= 0:
        raise NotRefundable()
    if amount > left:
        raise RefundExceedsPaid(f"最多还可退 {left} 分", field="amount_fen")
    return ({"order_id": order_id, "amount_fen": amount},
            f"退款 ¥{yuan(amount)}（订单 {order.out_trade_no}，已付 ¥{yuan(order.amount_fen)}）")


async def _apply_refund(ctx: ServiceContext, params: dict, me: Current, client: Client, reason: str,
                        proposal_id: int | None) -> Applied:
    from services.payments import refunds

    done = await refunds.refund(ctx, None, params["order_id"], amount_fen=params["amount_fen"], reason=reason[:80])
    return Applied({"order_id": params["order_id"], "refund_id": done.id, "out_refund_no": done.out_refund_no,
                    "amount_fen": done.amount_fen, "status": str(done.status)})


# -- putting a risk rule set in force -------------------------------------------------------------------


async def _parse_rules(ctx: ServiceContext, params: dict) -> tuple[dict, str]:
    from services.risk import rules

    source = params.get("rule_set")
    if isinstance(source, dict):
        source = json.dumps(source, ensure_ascii=False)
    if not isinstance(source, str | bytes) or not source or len(source) > 256 * 1024:
        raise ValidationFailed("请提供规则集（JSON，最多 256 KiB）", field="rule_set")
    rule_set = rules.parse(source)
    newest = await rules.newest_version()
    if newest is not None and rule_set.version <= newest:
        raise rules.RuleSetStale(f"当前最新的是第 {newest} 版", field="version")
    shadow = sum(r.status == "shadow" for r in rule_set.rules)
    return ({"rule_set": rule_set.model_dump(mode="json"), "digest": rules.digest(rule_set)},
            f"启用风控规则集第 {rule_set.version} 版（{len(rule_set.rules)} 条规则，其中影子规则 {shadow} 条）")


async def _apply_rules(ctx: ServiceContext, params: dict, me: Current, client: Client, reason: str,
                       proposal_id: int | None) -> Applied:
    from services.risk import rules

    row = await rules.load(rules.RuleSetFile.model_validate(params["rule_set"]), actor=me.actor)
    return Applied({"version": row.version, "digest": row.digest})


# -- a partner's scopes and secret ------------------------------------------------------------------------


async def _partner(params: dict) -> Partner:
    app_id = _text(params, "app_id", 32)
    partner = await Partner.get_or_none(app_id=app_id)
    if partner is None:
        raise NotFound("合作方不存在")
    return partner


async def _parse_scopes(ctx: ServiceContext, params: dict) -> tuple[dict, str]:
    from services.partners.registry import check_scopes

    partner = await _partner(params)
    scopes = params.get("scopes")
    if isinstance(scopes, str):
        scopes = [s.strip() for s in scopes.split(",") if s.strip()]
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes) or len(scopes) > 32:
        raise ValidationFailed("scopes must be a list of scope names", field="scopes")
    scopes = check_scopes(scopes)
    return ({"app_id": partner.app_id, "scopes": scopes},
            f"将合作方 {partner.name}（{partner.app_id}）的权限由 {','.join(partner.scopes)} 改为 {','.join(scopes)}")


async def _apply_scopes(ctx: ServiceContext, params: dict, me: Current, client: Client, reason: str,
                        proposal_id: int | None) -> Applied:
    from services.partners import registry

    partner = await registry.set_scopes(params["app_id"], params["scopes"], actor=me.actor)
    return Applied({"app_id": partner.app_id, "scopes": partner.scopes})


async def _parse_rotate(ctx: ServiceContext, params: dict) -> tuple[dict, str]:
    from services.partners.registry import DEFAULT_GRACE_S

    partner = await _partner(params)
    grace_s = _int(params, "grace_s", 0, 30 * 24 * 3600, required=False)
    grace_s = DEFAULT_GRACE_S if grace_s is None else grace_s
    return ({"app_id": partner.app_id, "grace_s": grace_s},
            f"轮换合作方 {partner.name}（{partner.app_id}）的密钥，旧密钥 {grace_s} 秒后失效")


async def _apply_rotate(ctx: ServiceContext, params: dict, me: Current, client: Client, reason: str,
                        proposal_id: int | None) -> Applied:
    from services.partners import registry

    made = await registry.rotate_secret(ctx, params["app_id"], grace_s=params["grace_s"], actor=me.actor)
    until = made.partner.previous_valid_until
    return Applied({"app_id": made.partner.app_id, "previous_valid_until": until.isoformat() if until else None},
                   shown_once={"secret": made.secret})


# -- revealing personal data beyond the daily allowance ----------------------------------------------------

FIELD_NAMES = {"name": "姓名", "phone": "手机号", "id_number": "身份证号", "account_number": "账号",
               "bound_card": "绑定银行卡号"}


async def _parse_reveal(ctx: ServiceContext, params: dict) -> tuple[dict, str]:
    from models.users import User
    from services.staff import pii
    from services.staff.errors import CustomerNotFound

    user_id = _int(params, "user_id")
    field = _text(params, "field", 64)
    name, _ = pii.parse_field(field)
    if not await User.exists(id=user_id):
        raise CustomerNotFound()
    return {"user_id": user_id, "field": field}, f"超出今日额度，查看客户 user:{user_id} 的{FIELD_NAMES[name]}（一次）"


async def _apply_reveal(ctx: ServiceContext, params: dict, me: Current, client: Client, reason: str,
                        proposal_id: int | None) -> Applied:
    """The proposer (not the approver) may then reveal this one value once, on the customer's page."""
    from models.staff import StaffProposal
    from services.db import atomic
    from services.staff import pii

    to = me.staff.id if proposal_id is None else (await StaffProposal.get(id=proposal_id)).proposed_by_id
    made = await atomic(lambda conn: pii.grant(conn, staff_id=to, user_id=params["user_id"], field=params["field"],
                                               proposal_id=proposal_id))
    return Applied({"granted_to": f"staff:{to}", "user_id": params["user_id"], "field": params["field"],
                    "grant": made.id})


KINDS = (("fraud", "欺诈冻结"), ("judicial", "司法冻结"))
ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("account.unfreeze", "解除冻结", "accounts.unfreeze", "accounts.unfreeze", _parse_unfreeze, _apply_unfreeze,
           fields=(FormField("account_id", "账户编号", "number"), FormField("kind", "冻结类型", "select", KINDS),
                   FormField("document", "文书编号（司法冻结有多项时）", required=False))),
    Action("transfer.approve", "放行暂缓的转账", "queues.decide", "queues.decide", _parse_transfer, _apply_transfer,
           four_eyes=_above_threshold, fields=(FormField("transfer_id", "转账编号", "number"),)),
    Action("payment.refund", "退款", "payments.refund", "payments.refund", _parse_refund, _apply_refund,
           four_eyes=_above_threshold,
           fields=(FormField("order_id", "订单编号", "number"),
                   FormField("amount_fen", "金额（分，不填为全部可退金额）", "number", required=False))),
    Action("risk.rules", "启用风控规则集", "risk.rules", "risk.rules", _parse_rules, _apply_rules,
           fields=(FormField("rule_set", "规则集（JSON）", "textarea"),)),
    Action("partner.scopes", "变更合作方权限", "partners.manage", "partners.manage", _parse_scopes, _apply_scopes,
           fields=(FormField("app_id", "合作方 App ID"), FormField("scopes", "权限（逗号分隔）"))),
    Action("pii.reveal", "超额查看个人信息", "customers.reveal", "customers.reveal", _parse_reveal, _apply_reveal,
           fields=(FormField("user_id", "客户编号", "number"), FormField("field", "字段"))),
    Action("partner.rotate_secret", "轮换合作方密钥", "partners.manage", "partners.manage", _parse_rotate,
           _apply_rotate, fields=(FormField("app_id", "合作方 App ID"),
                                  FormField("grace_s", "旧密钥保留（秒，默认 86400）", "number", required=False))),
)}
