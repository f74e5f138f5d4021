"""What the user has proven so far, and until when: shown by ``GET /api/v1/me``."""

from __future__ import annotations

from datetime import timedelta

from core.clock import china_today, utcnow
from core.pii import mask_card, mask_id_number, mask_name
from models.identity import Identity
from services.context import ServiceContext
from services.identity.bank_card import CARD_PURPOSE
from services.identity.id_card import ID_PURPOSE, NAME_PURPOSE


async def identity_status(ctx: ServiceContext, user_id: int) -> dict:
    identity = await Identity.get_or_none(user_id=user_id)
    if identity is None:
        return {
            "name": None,
            "id_number": None,
            "id_card": {"done": False, "verified_at": None, "valid_until": None},
            "face": {"done": False, "valid_until": None},
            "bank_card": {"done": False, "card_number": None, "card_class": None, "bank_name": None},
        }
    id_ok = identity.id_valid_until is None or identity.id_valid_until >= china_today()
    face_until = identity.face_passed_at + timedelta(seconds=ctx.settings.face_valid_s) if identity.face_passed_at else None
    card = ctx.pii.decrypt(identity.card_number_enc, purpose=CARD_PURPOSE) if identity.card_number_enc else None
    return {
        "name": mask_name(ctx.pii.decrypt(identity.name_enc, purpose=NAME_PURPOSE)),
        "id_number": mask_id_number(ctx.pii.decrypt(identity.id_number_enc, purpose=ID_PURPOSE)),
        "id_card": {
            "done": id_ok,
            "verified_at": identity.id_verified_at.isoformat(),
            "valid_until": identity.id_valid_until.isoformat() if identity.id_valid_until else "长期",
        },
        "face": {
            "done": face_until is not None and face_until > utcnow(),
            "valid_until": face_until.isoformat() if face_until else None,
        },
        "bank_card": {
            "done": identity.card_verified_at is not None,
            "card_number": mask_card(card) if card else None,
            "card_class": identity.card_class,
            "bank_name": identity.card_bank_name,
        },
    }
