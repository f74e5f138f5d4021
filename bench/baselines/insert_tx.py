"""Baseline: one INSERT in a transaction on a raw aiomysql pool (what a write path costs at the least)."""

import argparse
import os
from urllib.parse import urlsplit

import aiomysql
from sanic import Sanic
from sanic.config import Config
from sanic.response import json

config = Config()
config.AUTO_EXTEND = False
app = Sanic("baseline_insert_tx", config=config)
app.config.ACCESS_LOG = False


@app.before_server_start
async def start(app):
    parts = urlsplit(app.config.DB_URL)
    app.ctx.pool = await aiomysql.create_pool(
        host=parts.hostname, port=parts.port or 3306, user=parts.username or "root", password=parts.password or "",
        db=parts.path.lstrip("/"), minsize=1, maxsize=20, autocommit=False, charset="utf8mb4",
    )


@app.after_server_stop
async def stop(app):
    app.ctx.pool.close()
    await app.ctx.pool.wait_closed()


@app.post("/insert")
async def insert(request):
    async with app.ctx.pool.acquire() as conn:
        async with conn.cursor() as cur:
            await conn.begin()
            await cur.execute("INSERT INTO bench_events (token, body) VALUES (%s, %s)", (os.urandom(16).hex(), request.body.decode()))
            await conn.commit()
            new_id = cur.lastrowid
    return json({"id": new_id}, status=201)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    app.config.DB_URL = args.db
    app.run(host="127.0.0.1", port=args.port, single_process=True, access_log=False, motd=False)
