"""The audit trail is hash-chained: editing or deleting an event makes ``python -m app audit verify``
fail and name the event."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from models.audit import AuditEvent
from services import audit
from tests.e2e.servers import ROOT
from tests.helpers import verified_user


def audit_verify(settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "VAR_DIR": settings.var_dir, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app", "audit", "verify"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


async def test_tampering_is_detected_and_named(client, sandbox, settings):
    await verified_user(client, sandbox)  # appends events
    ok = await asyncio.to_thread(audit_verify, settings)
    assert ok.returncode == 0 and "audit chain OK" in ok.stdout, ok.stdout + ok.stderr

    victim = await AuditEvent.filter(action="identity.bank_card.verified").order_by("-seq").first()
    original = dict(victim.data)
    try:
        # Someone edits an event's content in the database
        await AuditEvent.filter(id=victim.id).update(data={**original, "card_class": "credit"})
        bad = await asyncio.to_thread(audit_verify, settings)
        assert bad.returncode == 1
        assert f"id={victim.id} seq={victim.seq}" in bad.stdout and "content changed" in bad.stdout
    finally:
        await AuditEvent.filter(id=victim.id).update(data=original)
    assert (await audit.verify()).ok


async def test_deleted_event_is_detected(client, sandbox):
    await verified_user(client, sandbox)
    victim = await AuditEvent.filter(action="identity.face.passed").order_by("-seq").first()
    saved = {f: getattr(victim, f) for f in ("id", "seq", "at", "actor", "action", "entity_type", "entity_id", "data", "prev_hash", "hash")}
    await AuditEvent.filter(id=victim.id).delete()
    try:
        report = await audit.verify()
        assert not report.ok and report.seq == victim.seq + 1 and "gap" in report.problem
    finally:
        await AuditEvent.create(**saved)
    assert (await audit.verify()).ok


async def test_deleting_the_newest_events_is_detected():
    last = await AuditEvent.all().order_by("-seq").first()
    saved = {f: getattr(last, f) for f in ("id", "seq", "at", "actor", "action", "entity_type", "entity_id", "data", "prev_hash", "hash")}
    await AuditEvent.filter(id=last.id).delete()
    try:
        report = await audit.verify()
        assert not report.ok and "head" in report.problem
    finally:
        await AuditEvent.create(**saved)
    assert (await audit.verify()).ok
