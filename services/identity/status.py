"""What the user has proven so far, and until when: shown by ``GET /api/v1/me``.

Works from the identity's columns (``services.users.profile`` reads them in the same round trip as the
user), so the profile is one query."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from core.clock import china_day, utcnow
from core.pii import mask_card, mask_id_number, mask_name
from services.context import ServiceContext
from services.identity.bank_card import CARD_PURPOSE
from services.identity.id_card import ID_PURPOSE, NAME_PURPOSE

# The identities columns ``identity_status`` reads.
COLUMNS = ("name_enc", "id_number_enc", "id_valid_until", "id_verified_at", "face_passed_at",
           "card_number_enc", "card_class", "card_bank_name", "card_verified_at")



@dataclass(frozen=True)
class IdentityStatus:
    """What the user has proven and until when, personal data masked (``IdentityOut`` shows it)."""

    name: str | None = None
    id_number: str | None = None
    id_verified_at: datetime | None = None  # None: no ID card verified yet
    id_valid_until: date | None = None  # None once verified: valid long-term (长期)
    id_done: bool = False  # verified and not expired
    face_valid_until: datetime | None = None
    face_done: bool = False  # passed and still fresh
    card_done: bool = False
    card_number: str | None = None
    card_class: str | None = None
    bank_name: str | None = None


NOT_STARTED = IdentityStatus()


def identity_status(ctx: ServiceContext, identity: Mapping[str, Any] | None) -> IdentityStatus:
    """``identity``: the user's identities row (dates and times already Python values), or None."""
    if identity is None or identity.get("id_verified_at") is None:
        return NOT_STARTED
    valid_until = identity["id_valid_until"]
    id_ok = valid_until is None or valid_until >= china_day()
    passed = identity["face_passed_at"]
    face_until = passed + timedelta(seconds=ctx.settings.face_valid_s) if passed else None
    card_enc = identity["card_number_enc"]
    card = ctx.pii.decrypt(card_enc, purpose=CARD_PURPOSE) if card_enc else None
    return IdentityStatus(
        name=mask_name(ctx.pii.decrypt(identity["name_enc"], purpose=NAME_PURPOSE)),
        id_number=mask_id_number(ctx.pii.decrypt(identity["id_number_enc"], purpose=ID_PURPOSE)),
        id_verified_at=identity["id_verified_at"],
        id_valid_until=valid_until,
        id_done=id_ok,
        face_valid_until=face_until,
        face_done=face_until is not None and face_until > utcnow(),
        card_done=identity["card_verified_at"] is not None,
        card_number=mask_card(card) if card else None,
        card_class=identity["card_class"],
        bank_name=identity["card_bank_name"],
    )
