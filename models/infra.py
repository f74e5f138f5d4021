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
