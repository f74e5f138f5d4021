"""Same-name bank-card check: the card network confirms name, ID number, card number and reserved
phone, and tells the card's class. Only a Class I debit card or a credit card in the user's own name
can be the bound card of a remote Class II account (PBOC 392号)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.clock import utcnow
from core.errors import UpstreamUnavailable
from core.pii import mask_card, mask_phone
from core.validators import card_number_ok, mobile_ok
from integrations.cardnet import CardNetworkUnavailable
from models.identity import AttemptKind, Identity
from services import audit
from services.context import ServiceContext
from services.db import atomic
from services.identity import attempts
from services.identity.errors import (
    CardClassNotAllowed,
    CardMismatch,
    CardNotFound,
    CardNumberInvalid,
    IdCardRequired,
    PhoneInvalid,
)
from services.identity.id_card import verified_identity

CARD_PURPOSE = "identity.bank_card"
CARD_PHONE_PURPOSE = "identity.bank_card_phone"
ALLOWED_CLASSES = {"I", "credit"}


@dataclass(frozen=True)
class BankCardResult:
    card_number: str
    card_class: str
    bank_name: str | None


@dataclass(frozen=True)
class CheckedCard:
    """A card the network matched with the user's verified name and ID number and the reserved phone,
    of an allowed class. ``card_number`` is the full number: encrypt it before storing, mask it to show."""

    card_number: str
    card_class: str
    bank_name: str | None
    request_id: str  # the network's reference of the check (the attempt's ``provider_ref``)
    masked_inputs: dict  # the card and phone masked, for audit events
    identity_id: int  # the verified identity it was checked against


async def check_card(ctx: ServiceContext, user_id: int, *, card_number: str, reserved_phone: str) -> CheckedCard:
    """The same-name check, stored nowhere: counted as an identity attempt (the daily limit) and
    recorded as evidence, whatever the answer. Raises the check's error when the card does not pass.
    Account opening keeps the card on the identity (``verify_bank_card``); a new bound card of an
    account (``services.accounts.bound_card``) is checked the same way."""
    card_number = card_number.replace(" ", "")
    if not card_number_ok(card_number):
        raise CardNumberInvalid(field="card_number")
    if not mobile_ok(reserved_phone):
        raise PhoneInvalid(field="reserved_phone")
    found = await verified_identity(ctx, user_id)
    if found is None:
        raise IdCardRequired()
    identity, name, id_number = found

    await attempts.take_slot(user_id, AttemptKind.BANK_CARD, ctx.settings.daily_attempt_limit)
    request_id = uuid.uuid4().hex
    inputs = {"card_number": mask_card(card_number), "reserved_phone": mask_phone(reserved_phone)}
    try:
        result = await ctx.cardnet.verify_elements(
            request_id=request_id, name=name, id_number=id_number, card_number=card_number, phone=reserved_phone
        )
    except CardNetworkUnavailable as exc:
        await attempts.record(user_id, AttemptKind.BANK_CARD, "UPSTREAM_UNAVAILABLE", provider_ref=request_id, inputs=inputs)
        raise UpstreamUnavailable() from exc

    error = None
    if result.result == "CARD_NOT_FOUND":
        error = CardNotFound(field="card_number")
    elif result.result != "MATCH":
        error = CardMismatch()
    elif result.card_class not in ALLOWED_CLASSES:
        error = CardClassNotAllowed(field="card_number")
    if error is not None:
        await attempts.record(user_id, AttemptKind.BANK_CARD, error.code, provider_ref=request_id,
                              inputs={**inputs, "card_class": result.card_class, "mismatched": list(result.mismatched_fields)})
        raise error
    await attempts.record(user_id, AttemptKind.BANK_CARD, "OK", provider_ref=request_id, inputs={**inputs, "card_class": result.card_class})
    return CheckedCard(card_number, result.card_class, result.bank_name, request_id, inputs, identity.id)


async def verify_bank_card(ctx: ServiceContext, user_id: int, *, card_number: str, reserved_phone: str) -> BankCardResult:
    """The opening's same-name card: checked, then kept (encrypted) on the user's identity."""
    card = await check_card(ctx, user_id, card_number=card_number, reserved_phone=reserved_phone)

    async def save(conn) -> None:
        await Identity.filter(id=card.identity_id).using_db(conn).update(
            card_number_enc=ctx.pii.encrypt(card.card_number, purpose=CARD_PURPOSE),
            card_number_index=ctx.pii.blind_index(card.card_number, purpose=CARD_PURPOSE),
            card_phone_enc=ctx.pii.encrypt(reserved_phone, purpose=CARD_PHONE_PURPOSE),
            card_class=card.card_class,
            card_bank_name=card.bank_name,
            card_verified_at=utcnow(),
        )
        await audit.append(conn, actor=f"user:{user_id}", action="identity.bank_card.verified", entity_type="user",
                           entity_id=user_id, data={**card.masked_inputs, "card_class": card.card_class,
                                                    "request_id": card.request_id})

    await atomic(save)
    return BankCardResult(mask_card(card.card_number), card.card_class, card.bank_name)
