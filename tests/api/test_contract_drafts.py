"""One open draft per user, template and subject, whatever the concurrency.

A double tap, a retry and a second worker all get the same draft: the unique ``draft_key`` lets one
insert win, the others return the winner's row and delete the PDF they rendered in vain."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from core.clock import utcnow
from models.contracts import Contract
from tests.conftest import MYSQL_URL, free_port
from tests.contract_helpers import fresh_face, sign, signature_upload
from tests.e2e.servers import ServerProcess, server_env
from tests.helpers import Sandbox, login_new_user, new_person, verify_id_card


def _stored_files(var_dir: str | Path) -> set[Path]:
    return {p for p in (Path(var_dir) / "uploads").rglob("*") if p.is_file()}


async def _user_with_id_card(client, sandbox):
    user = await login_new_user(client, sandbox)
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200
    return user


async def _prepare_many(client, user, n: int) -> list[httpx.Response]:
    return await asyncio.gather(*[
        client.post("/api/v1/contracts", headers=user.headers, json={"template": "privacy_consent"}) for _ in range(n)
    ])


async def test_concurrent_prepares_make_one_draft(client, sandbox, settings):
    user = await _user_with_id_card(client, sandbox)
    before = _stored_files(settings.var_dir)
    responses = await _prepare_many(client, user, 6)
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1, ids
    assert sum(r.status_code == 201 for r in responses) == 1
    (contract_id,) = ids
    drafts = await Contract.filter(user_id=(await Contract.get(id=contract_id)).user_id, template="privacy_consent")
    assert [c.id for c in drafts] == [contract_id]
    # the losers' PDFs are gone: the winner's is the only file added
    assert {p.name for p in _stored_files(settings.var_dir) - before} == {drafts[0].unsigned_key}


async def test_signing_frees_the_slot_for_a_new_draft(client, sandbox):
    user = await _user_with_id_card(client, sandbox)
    first = (await _prepare_many(client, user, 1))[0].json()
    verify_id = await fresh_face(client, sandbox, user)
    upload_id = await signature_upload(client, user)
    assert (await sign(client, user, first["id"], verify_id=verify_id, upload_id=upload_id)).status_code == 200
    again = (await _prepare_many(client, user, 1))[0]
    assert again.status_code == 201 and again.json()["id"] != first["id"]
    assert (await Contract.get(id=first["id"])).draft_key is None


async def test_an_expired_draft_is_closed_and_replaced(client, sandbox):
    user = await _user_with_id_card(client, sandbox)
    first = (await _prepare_many(client, user, 1))[0].json()
    await Contract.filter(id=first["id"]).update(expires_at=utcnow() - timedelta(seconds=1))
    again = (await _prepare_many(client, user, 1))[0]
    assert again.status_code == 201 and again.json()["id"] != first["id"]
    old = await Contract.get(id=first["id"])
    assert old.status == "expired" and old.draft_key is None and old.expired_at is not None


@pytest.mark.skipif(not MYSQL_URL, reason="several workers need MySQL (SQLite serves one)")
async def test_two_workers_make_one_draft(tmp_path):
    server = ServerProcess(free_port(), server_env(tmp_path, SANDBOX_ROUTES="1"), tmp_path / "server.log", workers=2)
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as client:
            sandbox = Sandbox(client)
            for _ in range(3):  # several rounds: each is a fresh race across the two processes
                user = await _user_with_id_card(client, sandbox)
                responses = await _prepare_many(client, user, 6)
                assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
                assert len({r.json()["id"] for r in responses}) == 1
                assert sum(r.status_code == 201 for r in responses) == 1
            # two ID photos per user and one PDF per draft: no PDF rendered in vain was left behind
            assert len(_stored_files(tmp_path)) == 3 * 2 + 3
        started = server.descendants()  # the workers, and the processes rendering contracts for them
        assert len(started) > 2
    finally:
        assert await asyncio.to_thread(server.stop) == 0
    # nothing outlives the server: the contract worker processes stop with their Sanic worker
    await asyncio.sleep(1)
    assert [pid for pid in started if Path(f"/proc/{pid}").exists() and
            b"zombie" not in Path(f"/proc/{pid}/status").read_bytes().lower()] == []
