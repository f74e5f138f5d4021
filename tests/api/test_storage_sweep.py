"""Stored files nothing refers to are removed once old enough; referenced and young ones stay.

A file is written before the row that names it commits (rendered PDF, signed PDF, upload), so a crash
or a lost race leaves an encrypted orphan. ``python -m app worker`` sweeps them under a DB lease."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from core.clock import utcnow
from models.contracts import Contract
from models.infra import JobLease
from services import jobs, storage_sweep
from tests.contract_helpers import prepared_contract, signature_upload
from tests.e2e.servers import ROOT, server_env

DAY = 24 * 3600


def _path(settings, key: str) -> Path:
    return Path(settings.var_dir) / "uploads" / key[:2] / key


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


async def test_sweep_removes_old_orphans_only(client, sandbox, ctx, settings):
    user, contract = await prepared_contract(client, sandbox)
    upload_id = await signature_upload(client, user)
    row = await Contract.get(id=contract["id"])
    from models.identity import Upload

    referenced = [row.unsigned_key, (await Upload.get(id=upload_id)).storage_key]
    old_orphans = [await ctx.storage.put(b"left behind by a crash", purpose="contract.pdf") for _ in range(3)]
    young_orphan = await ctx.storage.put(b"its row is about to commit", purpose="upload")
    partial = _path(settings, old_orphans[0]).with_name("f" * 32 + ".tmp")
    partial.write_bytes(b"half written")
    for key in referenced + old_orphans:
        _age(_path(settings, key), 2 * DAY)
    _age(partial, 2 * DAY)

    result = await storage_sweep.sweep(ctx, older_than_s=DAY)

    assert result["removed"] == 3 and result["kept"] >= 2
    assert not any(_path(settings, k).exists() for k in old_orphans)
    assert all(_path(settings, k).exists() for k in referenced)
    assert _path(settings, young_orphan).exists()
    assert not partial.exists()
    # and what stays still decrypts: the sweep touched nothing it kept
    assert (await client.get(f"/api/v1/contracts/{contract['id']}/pdf", headers=user.headers)).status_code == 200


async def test_dry_run_deletes_nothing(ctx, settings):
    key = await ctx.storage.put(b"orphan", purpose="upload")
    _age(_path(settings, key), 2 * DAY)
    result = await storage_sweep.sweep(ctx, older_than_s=DAY, dry_run=True)
    assert result["dry_run"] and result["removed"] >= 1 and _path(settings, key).exists()
    await storage_sweep.sweep(ctx, older_than_s=DAY)
    assert not _path(settings, key).exists()


async def test_one_holder_at_a_time_and_a_dead_holders_lease_lapses():
    name = f"test.lease.{time.time_ns()}"
    assert await jobs.claim(name, "host-a:1", lease_s=60)
    assert not await jobs.claim(name, "host-b:2", lease_s=60)
    assert await jobs.claim(name, "host-a:1", lease_s=60)  # renewing your own
    # host-a dies without releasing: once its lease lapses, host-b takes over
    await JobLease.filter(name=name).update(claimed_until=utcnow() - timedelta(seconds=1))
    assert await jobs.claim(name, "host-b:2", lease_s=60)
    await jobs.release(name, "host-b:2")
    assert (await JobLease.get(name=name)).claimed_by is None


async def test_concurrent_claims_have_one_winner():
    name = f"test.race.{time.time_ns()}"
    won = await asyncio.gather(*[jobs.claim(name, f"host:{i}", lease_s=60) for i in range(8)])
    assert sum(won) == 1


async def test_a_job_runs_once_per_interval_across_workers():
    runs = []

    async def work():
        runs.append(1)
        return {"n": len(runs)}

    job = jobs.Job(f"test.job.{time.time_ns()}", every_s=3600, run=work)
    assert await jobs.run_due(job, "host-a:1") == {"n": 1}
    assert await jobs.run_due(job, "host-b:2") is None  # not due yet, whoever asks
    lease = await JobLease.get(name=job.name)
    assert lease.last_result == {"n": 1} and lease.claimed_by is None
    await JobLease.filter(name=job.name).update(last_run_at=utcnow() - timedelta(hours=2))
    assert await jobs.run_due(job, "host-b:2") == {"n": 2}


async def test_a_failing_job_releases_its_lease():
    async def boom():
        raise RuntimeError("disk full")

    job = jobs.Job(f"test.fail.{time.time_ns()}", every_s=0, run=boom)
    assert await jobs.run_due(job, "host-a:1") is None
    lease = await JobLease.get(name=job.name)
    assert lease.claimed_by is None and lease.last_result == {"error": True}


def test_worker_process_sweeps_and_stops_on_sigterm(tmp_path):
    env = server_env(tmp_path, STORAGE_SWEEP_AGE_S="60", STORAGE_SWEEP_EVERY_S="1")
    orphan = tmp_path / "uploads" / "ab" / ("ab" + "0" * 30)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"v1.dev1.orphan")
    _age(orphan, 600)
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "app", "worker", "--poll-s", "0.2"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 60
        while orphan.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert not orphan.exists(), (tmp_path / "worker.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        log.close()
    assert code == 0, (tmp_path / "worker.log").read_text()
    assert "storage.sweep" in (tmp_path / "worker.log").read_text()
