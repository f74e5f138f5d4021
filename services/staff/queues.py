"""What waits for a reviewer: top-ups and withdrawals held by risk control, and partner debits it
refused. Approving a held transfer is a maker-checker action above ``ADMIN_FOUR_EYES_ABOVE_FEN``
(``services.staff.actions``, ``transfer.approve``); rejecting one releases the money and needs one
person, audited as theirs."""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from models.accounts import CardTransfer
from services.accounts import funding
from services.db import atomic
from services.staff.sessions import Client, Current, record
from services.staff.proposals import reason_of


async def reject_held(ctx, me: Current, client: Client, transfer_id: int, reason: str) -> CardTransfer:
    """Release a held transfer (a top-up's reservation; a withdrawal's debit reversed), sending nothing."""
    reason = reason_of(reason)
    transfer = await CardTransfer.get_or_none(id=transfer_id)
    if transfer is None:
        raise funding.TransferNotFound()

    async def note(conn: BaseDBAsyncClient) -> None:
        await record(conn, me, client, "staff.transfer_rejected", entity_type="card_transfer", entity_id=transfer_id,
                     reason=reason, amount_fen=transfer.amount_fen, direction=str(transfer.direction))

    done = await funding.review_held(ctx, transfer_id, approve=False, actor=me.actor, note=reason)
    await atomic(note)
    return done
