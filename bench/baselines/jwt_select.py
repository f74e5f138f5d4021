"""Baseline: an HS256 JWT check (pyjwt) and one primary-key SELECT on a raw aiomysql pool.

What ``GET /api/v1/me`` needs at the least: verify the token, read one row. The table and token are
made by the benchmark (``bench/scenarios.py``); the pool is as large as the project's (maxsize 20).
"""

import argparse
from urllib.parse import urlsplit

import aiomysql
import jwt
from sanic import Sanic
from sanic.config import Config
from sanic.response import json

config = Config()
config.AUTO_EXTEND = False
app = Sanic("baseline_jwt_select", config=config)
app.config.ACCESS_LOG = False
KEY = b"bench-only-jwt-key-0123456789abcdef0123456789"


@app.before_server_start
async def start(app):
    parts = urlsplit(app.config.DB_URL)
    app.ctx.pool = await aiomysql.create_pool(
        host=parts.hostname, port=parts.port or 3306, user=parts.username or "root", password=parts.password or "",
        db=parts.path.lstrip("/"), minsize=1, maxsize=20, autocommit=True, charset="utf8mb4",
    )


@app.after_server_stop
async def stop(app):
    app.ctx.pool.close()
    await app.ctx.pool.wait_closed()


@app.get("/me")
async def me(request):
    token = request.headers.get("authorization", "")[7:]
    try:
        claims = jwt.decode(token, KEY, algorithms=["HS256"], audience="bench", issuer="bench")
    except jwt.PyJWTError:
        return json({"error": "unauthorized"}, status=401)
    async with app.ctx.pool.acquire() as conn:
        async with conn.cursor(aiomysql.DictCursor) as cur:
            await cur.execute("SELECT id, openid, phone_enc, created_at FROM bench_users WHERE id = %s", (int(claims["sub"]),))
            row = await cur.fetchone()
    return json({"id": row["id"], "openid": row["openid"], "created_at": row["created_at"].isoformat()})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    app.config.DB_URL = args.db
    app.run(host="127.0.0.1", port=args.port, single_process=True, access_log=False, motd=False)
