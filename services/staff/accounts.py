"""The console's accounts page: find an account, see its restrictions, freeze it (one member with the
role) or propose lifting a freeze (maker-checker: ``account.unfreeze``)."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ValidationFailed
from models.accounts import Account, AccountRestriction
from services.accounts import restrictions
from services.db import atomic
from services.staff.actions import masked_number
from services.staff.proposals import reason_of
from services.staff.sessions import Client, Current, record

LABELS = {"FRAUD_FREEZE": "欺诈冻结", "JUDICIAL_FREEZE": "司法冻结", "LOSS_REPORTED": "挂失", "ID_EXPIRED": "证件过期"}


@dataclass(frozen=True)
class AccountView:
    id: int
    number: str  # masked
    account_class: str
    status: str
    balance_fen: int
    in_force: list[AccountRestriction]
    history: list[AccountRestriction]


async def find(number: str) -> Account | None:
    number = (number or "").replace(" ", "")
    if not number.isdigit() or not 12 <= len(number) <= 19:
        raise ValidationFailed("账号须为 12 到 19 位数字", field="number")
    return await Account.get_or_none(number=number)


async def view(account_id: int) -> AccountView:
    account = await Account.get_or_none(id=account_id)
    if account is None:
        raise restrictions.AccountNotFound()
    rows = await AccountRestriction.filter(account_id=account_id).order_by("-id").limit(50)
    return AccountView(account.id, masked_number(account.number), account.account_class, str(account.status),
                       account.balance_fen, [r for r in rows if r.lifted_at is None],
                       [r for r in rows if r.lifted_at is not None])


async def freeze(me: Current, client: Client, account_id: int, *, kind: str, reason: str, held_fen: int | None,
                 document: str | None) -> restrictions.Changed:
    """A fraud or judicial freeze by one member (protective: it needs no second person), audited as theirs."""
    reason = reason_of(reason)
    done = await restrictions.freeze(account_id, kind=kind, reason=reason, by=me.actor, held_fen=held_fen,
                                     document_ref=document)
    await atomic(lambda conn: record(conn, me, client, "staff.account_frozen", entity_type="account",
                                     entity_id=account_id, reason=reason, kind=kind, held_fen=held_fen,
                                     document=document, changed=done.changed))
    return done
