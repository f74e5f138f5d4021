"""What the user has proven so far, and until when: shown by ``GET /api/v1/me``.

Works from the identity's columns (``services.users.profile`` reads them in the same round trip as the
user), so the profile is one query."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from core.clock import china_day, utcnow
from core.pii import mask_card, mask_id_number, mask_name
from services.context import ServiceContext
from services.identity.bank_card import CARD_PURPOSE
from services.identity.id_card import ID_PURPOSE, NAME_PURPOSE

# The identities columns ``identity_status`` reads.
COLUMNS = ("name_enc", "id_number_enc", "id_valid_until", "id_verified_at", "face_passed_at",
           "card_number_enc", "card_class", "card_bank_name", "card_verified_at")

NOT_STARTED = {
    "name": None,
    "id_number": None,
    "id_card": {"done": False, "verified_at": None, "valid_until": None},
    "face": {"done": False, "valid_until": None},
    "bank_card": {"done": False, "card_number": None, "card_class": None, "bank_name": None},
}


def identity_status(ctx: ServiceContext, identity: Mapping[str, Any] | None) -> dict:
    """``identity``: the user's identities row (dates and times already Python values), or None."""
    if identity is None or identity.get("id_verified_at") is None:
        return NOT_STARTED
    valid_until = identity["id_valid_until"]
    id_ok = valid_until is None or valid_until >= china_day()
    passed = identity["face_passed_at"]
    face_until = passed + timedelta(seconds=ctx.settings.face_valid_s) if passed else None
    card_enc = identity["card_number_enc"]
    card = ctx.pii.decrypt(card_enc, purpose=CARD_PURPOSE) if card_enc else None
    return {
        "name": mask_name(ctx.pii.decrypt(identity["name_enc"], purpose=NAME_PURPOSE)),
        "id_number": mask_id_number(ctx.pii.decrypt(identity["id_number_enc"], purpose=ID_PURPOSE)),
        "id_card": {
            "done": id_ok,
            "verified_at": identity["id_verified_at"].isoformat(),
            "valid_until": valid_until.isoformat() if valid_until else "长期",
        },
        "face": {
            "done": face_until is not None and face_until > utcnow(),
            "valid_until": face_until.isoformat() if face_until else None,
        },
        "bank_card": {
            "done": identity["card_verified_at"] is not None,
            "card_number": mask_card(card) if card else None,
            "card_class": identity["card_class"],
            "bank_name": identity["card_bank_name"],
        },
    }
