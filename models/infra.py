"""Shared state that must not live in process memory (several workers and hosts share it)."""

from tortoise import fields
from tortoise.models import Model


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
    last_run_at = fields.DatetimeField(null=True)
    last_result = fields.JSONField(null=True)

    class Meta:
        table = "job_leases"
