"""A new bound card for an account: the holder replaces the card the account is bound to (the card that
top-ups pull from and withdrawals push to), after the same-name check of the new card that account
opening makes and a fresh face verification.

In order, each refusal before anything is spent:

1. the account is the user's (another user's answers as one that does not exist), not closed, with no
   restriction in force (a loss report, a bank's freeze, an expired ID: the card stays as it is while the
   account is restricted; for ``ID_EXPIRED`` the holder renews the ID card first), and with no top-up or
   withdrawal still pending or held (``TRANSFER_PENDING``: such a transfer is sent, and sent again, to the
   card on the account); the holder's ID card is still valid (``ID_EXPIRED``, as at opening);
2. the new card is well-formed and is not the card bound now (``CARD_ALREADY_BOUND``);
3. the face verification is this user's, passed within ``face_intent_s`` and unused (checked before the
   card, so a stale one costs no attempt of the day);
4. the same-name check, as at opening (``services.identity.bank_card.check_card``): a Class I debit or a
   credit card in the holder's name and ID number, with the phone its bank holds; counted as an identity
   attempt and recorded as evidence. A card that fails leaves the bound card as it was;
5. one transaction under the account's lock (``ledger.locked_account``): step 1 and 2 again (a transfer or
   a restriction may have come meanwhile), the face verification used up, the card swapped on the account
   (encrypted, blind-indexed, masked), the history (``AccountBoundCard``) closing the old card's row and
   opening the new one's, and the audit event ``account.bound_card.changed`` with both cards masked.

The opening's card is the history's first row (``opening.submit``; the migration carried the accounts opened
before). The user's identity keeps the card verified at opening: a new bound card belongs to one account.
"""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import china_day, utcnow
from core.errors import Conflict
from core.pii import mask_card
from core.validators import card_number_ok, mobile_ok
from models.accounts import Account, AccountBoundCard, AccountRestriction, AccountStatus, RestrictionCode
from services import audit
from services.accounts import ledger
from services.accounts.funding import refuse_in_flight
from services.accounts.ledger import AccountClosed, AccountNotFound, AccountRestricted
from services.accounts.opening import ACCOUNT_CARD_PURPOSE
from services.context import ServiceContext
from services.db import atomic
from services.identity import bank_card, face
from services.identity.errors import CardNumberInvalid, IdCardRequired, IdExpired, PhoneInvalid
from services.identity.id_card import verified_identity

ACTION = "account.bound_card.changed"


class CardAlreadyBound(Conflict):
    code, message = "CARD_ALREADY_BOUND", "该银行卡已是本账户的绑定银行卡"


# ACCOUNT_RESTRICTED and ID_EXPIRED, said for a new bound card (the ledger's text is about money going out)
RESTRICTED_TEXT = "账户已挂失或被冻结，暂不能更换绑定银行卡"
ID_EXPIRED_TEXT = "身份证件已过期，请先更新身份证后再更换绑定银行卡"


async def _refuse_state(conn: BaseDBAsyncClient | None, account: Account) -> None:
    """Step 1 on ``account`` (locked, when ``conn`` is the transaction's)."""
    if account.status in ledger.SHUT:  # closed, or closing (its balance on its way to the card)
        raise AccountClosed()
    in_force = set(await AccountRestriction.filter(account_id=account.id, lifted_at=None).using_db(conn)
                   .values_list("code", flat=True))
    if RestrictionCode.ID_EXPIRED in in_force:
        raise AccountRestricted(ID_EXPIRED_TEXT)
    if in_force:
        raise AccountRestricted(RESTRICTED_TEXT)
    await refuse_in_flight(conn, account.id)


def _same_card(ctx: ServiceContext, account: Account, card_number: str) -> bool:
    return ctx.pii.blind_index(card_number, purpose=ACCOUNT_CARD_PURPOSE) == account.bound_card_index


async def change(ctx: ServiceContext, user_id: int, account_id: int, *, card_number: str, reserved_phone: str,
                 verify_id: str) -> Account:
    """Bind ``card_number`` to the account in place of its card; returns the account as changed."""
    account = await Account.get_or_none(id=account_id, user_id=user_id)
    if account is None:  # another user's account answers as one that does not exist
        raise AccountNotFound()
    await _refuse_state(None, account)
    found = await verified_identity(ctx, user_id)
    if found is None:
        raise IdCardRequired()
    valid_until = found[0].id_valid_until
    if valid_until is not None and valid_until < china_day():
        raise IdExpired(ID_EXPIRED_TEXT)
    card_number = card_number.replace(" ", "")
    if not card_number_ok(card_number):
        raise CardNumberInvalid(field="card_number")
    if not mobile_ok(reserved_phone):
        raise PhoneInvalid(field="reserved_phone")
    if _same_card(ctx, account, card_number):
        raise CardAlreadyBound(field="card_number")
    fv = await face.check_intent(ctx, user_id, verify_id, max_age_s=ctx.settings.face_intent_s)
    checked = await bank_card.check_card(ctx, user_id, card_number=card_number, reserved_phone=reserved_phone)

    async def swap(conn: BaseDBAsyncClient) -> Account:
        locked = await ledger.locked_account(conn, account_id)
        await _refuse_state(conn, locked)
        if _same_card(ctx, locked, checked.card_number):
            raise CardAlreadyBound(field="card_number")
        await face.consume(conn, fv, purpose=f"bound_card:{account_id}")
        now, old_masked = utcnow(), locked.bound_card_masked
        new = {"bound_card_enc": ctx.pii.encrypt(checked.card_number, purpose=ACCOUNT_CARD_PURPOSE),
               "bound_card_index": ctx.pii.blind_index(checked.card_number, purpose=ACCOUNT_CARD_PURPOSE),
               "bound_card_masked": mask_card(checked.card_number)}
        await Account.filter(id=account_id).using_db(conn).update(**new)
        replaced = await AccountBoundCard.filter(account_id=account_id, replaced_at=None).using_db(conn).update(
            replaced_at=now)
        if not replaced:  # an account with no history yet (made outside the opening): keep its old card's reference
            await AccountBoundCard.create(
                account_id=account_id, card_enc=locked.bound_card_enc, card_index=locked.bound_card_index,
                card_masked=old_masked, bound_at=locked.opened_at, replaced_at=now, using_db=conn)
        row = await AccountBoundCard.create(
            account_id=account_id, card_enc=new["bound_card_enc"], card_index=new["bound_card_index"],
            card_masked=new["bound_card_masked"], card_class=checked.card_class, bank_name=checked.bank_name,
            check_ref=checked.request_id, face_verification_id=fv.id, bound_at=now, using_db=conn)
        await audit.append(conn, actor=f"user:{user_id}", action=ACTION, entity_type="account", entity_id=account_id,
                           data={"old_card": old_masked, "new_card": new["bound_card_masked"],
                                 "card_class": checked.card_class, "reserved_phone": checked.masked_inputs["reserved_phone"],
                                 "check_ref": checked.request_id, "verify_id": fv.verify_id, "history_id": row.id})
        for name, value in new.items():
            setattr(locked, name, value)
        return locked

    return await atomic(swap)

