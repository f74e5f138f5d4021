"""Shared state that must not live in process memory (several workers and hosts share it)."""

from tortoise import fields
from tortoise.models import Model

# re-exported: the enums live in models.enums, which handlers may import
from models.enums import OutboxStatus  # noqa: F401

from models.columns import ExactCharField


class CacheEntry(Model):
    """A small key/value cache with expiry, e.g. the WeChat access token, shared by all workers."""

    key = fields.CharField(max_length=128, primary_key=True)
    value = fields.TextField()
    expires_at = fields.DatetimeField()
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "cache_entries"


class JobLease(Model):
    """Who may run a periodic job right now, shared by every worker and host.

    A worker takes the lease with one conditional UPDATE (``claimed_until`` in the past, or its own);
    a worker that dies simply stops renewing, and the lease comes back by itself when it lapses."""

    name = fields.CharField(max_length=64, primary_key=True)
    claimed_by = fields.CharField(max_length=128, null=True)
    claimed_until = fields.DatetimeField(null=True)
    last_run_at = fields.DatetimeField(null=True)  # the last run, failed or not: when it is next due
    last_ok_at = fields.DatetimeField(null=True)  # the last run that succeeded: how overdue the job is
    last_result = fields.JSONField(null=True)

    class Meta:
        table = "job_leases"


class IdempotencyRecord(Model):
    """A request made with an ``Idempotency-Key``: the first one's answer is kept and replayed for the
    same key and body; the same key with another body is refused. Unique per user, operation and key."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.BigIntField()
    scope = fields.CharField(max_length=64)  # the operation, e.g. "POST /api/v1/accounts/{account_id}/top-ups"
    key = ExactCharField(max_length=64)
    request_hash = fields.CharField(max_length=64)
    status_code = fields.IntField(null=True)  # None until the first request has a final answer
    response = fields.JSONField(null=True)
    # While a request runs under this key, its lease: a retry meanwhile is told the key is in use; a
    # request that died (or answered 5xx / 202) leaves the record to be taken over by the next retry.
    locked_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "idempotency_records"
        unique_together = (("user_id", "scope", "key"),)
        indexes = (("expires_at",),)


class OutboxMessage(Model):
    """A side effect to deliver (a subscribe message, later partner webhooks), written in the same
    transaction as the change it reports, delivered by a worker that claims it by lease."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=32)
    payload = fields.JSONField()
    status = fields.CharEnumField(OutboxStatus, max_length=16, default=OutboxStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    claimed_by = fields.CharField(max_length=128, null=True)
    claimed_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "outbox_messages"
        indexes = (("status", "next_attempt_at"),)


class OutboxAttempt(Model):
    """One delivery attempt of an outbox message, and what came of it."""

    id = fields.BigIntField(primary_key=True)
    message = fields.ForeignKeyField("models.OutboxMessage", related_name="attempt_log", on_delete=fields.CASCADE)
    at = fields.DatetimeField(auto_now_add=True)
    ok = fields.BooleanField()
    detail = fields.CharField(max_length=255)

    class Meta:
        table = "outbox_attempts"


class PushEvent(Model):
    """A message WeChat pushed to ``/callbacks/wechat/push`` (an event such as a change of a user's
    subscribe-message consent), once: ``dedupe_key`` is its ``MsgId``, or sender, time and event."""

    id = fields.BigIntField(primary_key=True)
    dedupe_key = fields.CharField(max_length=160, unique=True)
    msg_type = fields.CharField(max_length=32)
    event = fields.CharField(max_length=64, null=True)
    from_user = fields.CharField(max_length=64, null=True)  # the user's openid
    payload = fields.JSONField()
    safe_mode = fields.BooleanField()
    received_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "push_events"


class RateCounter(Model):
    """Requests counted per limit, subject and fixed window (``services.ratelimit``), in the database so
    every worker and host shares one count."""

    bucket = fields.CharField(max_length=160, primary_key=True)  # "<limit>:<subject>:<window start>"
    window_start = fields.BigIntField(db_index=True)  # Unix seconds; old windows are swept
    hits = fields.IntField(default=0)

    class Meta:
        table = "rate_counters"
