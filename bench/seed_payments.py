"""Seed WeChat Pay orders for the notifications benchmark, as ``POST /payments/orders`` leaves them.

    python bench/seed_payments.py N OUT

Run with the project's environment (``DATABASE_URL``, ``VAR_DIR``, ``SELF_BASE_URL`` of the running
server), so the merchant, app and APIv3 key are the ones the server checks notifications with. Makes one
user and ``N`` device-fee orders in ``prepaid``; writes ``OUT`` (JSON): the merchant id, app id and APIv3
key, the sandbox WeChat Pay's platform key (read from its state file: a dev key the emulator made) and
the orders' ``[out_trade_no, amount_fen]``. The benchmark signs and encrypts the notifications itself,
with the emulator's own functions, just before each run (their timestamps must be within five minutes).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def seed(ctx, n: int, out: Path) -> None:
    from core.clock import utcnow
    from models.payments import OrderStatus, PaymentOrder
    from models.users import User
    from services.payments.orders import DESCRIPTIONS, OBU_FEE_FEN

    settings = ctx.settings
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:  # opens the emulator's state file
        (await http.get(f"{settings.self_base_url}/sandbox/control/pay/platform-key")).raise_for_status()
    with sqlite3.connect(Path(settings.var_dir) / "sandbox.sqlite3") as db:
        key_id, private_pem = db.execute("SELECT public_key_id, private_key_pem FROM pay_platform WHERE id = 1").fetchone()
    user = await User.create(openid="obench" + secrets.token_hex(10))
    run, now = secrets.token_hex(3).upper(), utcnow()
    orders = [(f"BN{run}{i:08d}", OBU_FEE_FEN) for i in range(n)]
    for start in range(0, n, 1000):
        await PaymentOrder.bulk_create([
            PaymentOrder(user_id=user.id, purpose="obu_fee", reference_id=10**9 + start + i, out_trade_no=no,
                         amount_fen=amount, description=DESCRIPTIONS["obu_fee"], status=OrderStatus.PREPAID,
                         prepay_id=f"wx{no}", time_expire=now + timedelta(hours=2), prepaid_at=now)
            for i, (no, amount) in enumerate(orders[start:start + 1000])])
    out.write_text(json.dumps({
        "mchid": settings.wechatpay_mchid, "appid": settings.wechat_appid, "apiv3_key": settings.wechatpay_apiv3_key,
        "key_id": key_id, "private_key_pem": private_pem, "run": run, "orders": orders}), encoding="utf-8")


def main(argv: list[str]) -> int:
    from app.__main__ import _settings, _with_services

    n, out = int(argv[0]), Path(argv[1])
    asyncio.run(_with_services(_settings(), lambda ctx: seed(ctx, n, out)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
