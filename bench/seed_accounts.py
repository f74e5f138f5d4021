"""Seed open Class II accounts for the money benchmarks, as account opening would leave them.

    python bench/seed_accounts.py N OUT CONTROL_URL [BALANCE_FEN]

Run with the project's environment (``DATABASE_URL``, ``VAR_DIR``: the same keys as the server under
test), so the bound cards are encrypted with its PII key and the access tokens signed with its JWT key.
Each account gets a user, a holder, a bound card registered in the card-network emulator at
``CONTROL_URL`` (``/sandbox/control``) with money on it, and ``BALANCE_FEN`` in the account, booked
through the ledger like any other credit. Writes one line per account to ``OUT``:
``account_id<TAB>access_token``.

Opening through the API would take a face check and a signed PDF per account; what the benchmarks
measure starts once the account exists.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CARD_BALANCE_FEN = 10**12


async def open_account(ctx, balance_fen: int):
    """``(user, account, bound card number)``: a user with an open Class II account, as opening leaves
    it, with ``balance_fen`` booked through the ledger."""
    from core.clock import utcnow
    from core.pii import mask_card
    from models.accounts import Account, AccountHolder, EntryDirection, EntryKind
    from models.users import User
    from services.accounts import ledger, rules
    from services.accounts.numbers import new_account_number
    from services.accounts.opening import ACCOUNT_CARD_PURPOSE
    from services.db import atomic
    from tests.identity_data import make_card_number

    card = make_card_number()
    user = await User.create(openid="obench" + secrets.token_hex(10))
    holder = secrets.token_hex(32)
    await AccountHolder.create(holder_index=holder)
    account = await Account.create(
        number=new_account_number(ctx.settings.bank_account_prefix), user_id=user.id, holder_index=holder,
        account_class="II", rules_version=rules.RULES_VERSION,
        bound_card_enc=ctx.pii.encrypt(card, purpose=ACCOUNT_CARD_PURPOSE),
        bound_card_index=ctx.pii.blind_index(card, purpose=ACCOUNT_CARD_PURPOSE),
        bound_card_masked=mask_card(card), opened_at=utcnow())
    if balance_fen:
        await atomic(lambda conn: ledger.post(conn, account.id, direction=EntryDirection.CREDIT, kind=EntryKind.TOP_UP,
                                              amount_fen=balance_fen, reference=f"seed-{account.id}"))
    return user, account, card


async def seed(ctx, n: int, out: Path, control_url: str, balance_fen: int) -> None:
    from tests.identity_data import make_id_number

    lines: list[str] = []
    cards: list[str] = []
    for _ in range(n):
        user, account, card = await open_account(ctx, balance_fen)
        lines.append(f"{account.id}\t{ctx.jwt.issue(str(user.id), family=secrets.token_hex(8))}")
        cards.append(card)

    async with httpx.AsyncClient(base_url=control_url, timeout=30, trust_env=False) as http:
        gate = asyncio.Semaphore(16)

        async def register(card: str) -> None:
            async with gate:
                resp = await http.post("/bank-cards", json={
                    "card_number": card, "name": "王小明", "id_number": make_id_number(), "phone": "13812345678",
                    "card_class": "I", "balance_fen": CARD_BALANCE_FEN})
                resp.raise_for_status()

        await asyncio.gather(*(register(c) for c in cards))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    from app.__main__ import _settings, _with_services

    n, out, control_url = int(argv[0]), Path(argv[1]), argv[2]
    balance_fen = int(argv[3]) if len(argv) > 3 else 0
    asyncio.run(_with_services(_settings(), lambda ctx: seed(ctx, n, out, control_url, balance_fen)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
