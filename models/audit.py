"""Append-only audit events, chained by hash so an edited or deleted event is detectable.

Each event stores ``prev_hash`` (the previous event's ``hash``) and its own ``hash`` over its content
and ``prev_hash``. Appends are serialised through the single ``AuditHead`` row (locked FOR UPDATE), so
the chain has no forks even with many workers.
"""

from tortoise import fields
from tortoise.models import Model


class AuditEvent(Model):
    id = fields.BigIntField(primary_key=True)
    seq = fields.BigIntField(unique=True)
    at = fields.DatetimeField()
    actor = fields.CharField(max_length=64)  # "user:42", "system", "partner:app_x"
    action = fields.CharField(max_length=64)  # "identity.id_card.verified"
    entity_type = fields.CharField(max_length=32)
    entity_id = fields.CharField(max_length=64)
    data = fields.JSONField(default=dict)  # masked values only
    prev_hash = fields.CharField(max_length=64)
    hash = fields.CharField(max_length=64)

    class Meta:
        table = "audit_events"
        indexes = (("entity_type", "entity_id"),)


class AuditHead(Model):
    id = fields.IntField(primary_key=True)
    seq = fields.BigIntField(default=0)
    hash = fields.CharField(max_length=64)

    class Meta:
        table = "audit_head"
