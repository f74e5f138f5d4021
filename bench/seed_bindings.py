"""Seed active ETC bindings and one partner for the partner-debit benchmarks.

    python bench/seed_bindings.py N OUT [BALANCE_FEN]

Run with the project's environment (``DATABASE_URL``, ``VAR_DIR``), like ``bench/seed_accounts.py``:
each binding gets a user, an open Class II account holding ``BALANCE_FEN`` (booked through the
ledger), a car and an ETC card, bound and active as signing the authorisation would leave it. The
partner holds every debit scope. Writes ``app_id<TAB>secret`` on the first line of ``OUT``, then one
ETC card number per line (the account of line i+1 is the i-th binding's).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def seed(ctx, n: int, out: Path, balance_fen: int) -> None:
    from bench.seed_accounts import open_account
    from core.clock import utcnow
    from core.pii import mask_card
    from models.etc import BindingStatus, EtcBinding, Vehicle
    from services.etc.bindings import CARD_PURPOSE
    from services.partners import registry

    made = await registry.create(ctx, name="bench", scopes=list(registry.SCOPES))
    lines = [f"{made.partner.app_id}\t{made.secret}"]
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    start = secrets.randbelow(24 * 10**5 - n)  # plates are unique across every binding in the database
    for i in range(start, start + n):
        user, account, _ = await open_account(ctx, balance_fen)
        plate = f"豫{letters[i // 10**5]}{i % 10**5:05d}"
        vehicle = await Vehicle.create(user_id=user.id, plate_number=plate, plate_color="blue",
                                       active_key=f"{user.id}:{plate}_blue")
        card = "4101" + "".join(secrets.choice("0123456789") for _ in range(16))
        index = ctx.pii.blind_index(card, purpose=CARD_PURPOSE)
        await EtcBinding.create(
            user_id=user.id, vehicle_id=vehicle.id, account_id=account.id,
            card_enc=ctx.pii.encrypt(card, purpose=CARD_PURPOSE), card_index=index, card_masked=mask_card(card),
            plate=f"{plate}_blue", status=BindingStatus.ACTIVE, card_key=index, plate_key=f"{plate}_blue",
            expires_at=utcnow(), activated_at=utcnow())
        lines.append(card)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    from app.__main__ import _settings, _with_services

    n, out = int(argv[0]), Path(argv[1])
    balance_fen = int(argv[2]) if len(argv) > 2 else 0
    asyncio.run(_with_services(_settings(), lambda ctx: seed(ctx, n, out, balance_fen)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
