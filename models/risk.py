"""Risk control: the rule sets analysts load, and the block and allow lists.

A rule set is stored whole, as loaded (``source``), under a version that only grows; the newest is the
one in force. What a decision was is stored with the movement it was about (``PartnerDebit.risk_*``),
with the version that decided it.
"""

from tortoise import fields
from tortoise.models import Model


class RiskRuleSet(Model):
    id = fields.BigIntField(primary_key=True)
    version = fields.IntField(unique=True)
    description = fields.CharField(max_length=200, default="")
    source = fields.JSONField()  # the file, as validated
    digest = fields.CharField(max_length=64)  # SHA-256 of the canonical JSON: what the audit chain records
    loaded_by = fields.CharField(max_length=64)
    loaded_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "risk_rule_sets"


class RiskListEntry(Model):
    """A value on a block or allow list, until it expires. PII (an ID number, a card) is listed by its
    blind index, never in clear."""

    id = fields.BigIntField(primary_key=True)
    list = fields.CharField(max_length=16)  # services.risk.rules.LISTS: id, card, plate, device, merchant, partner
    value = fields.CharField(max_length=128)
    action = fields.CharField(max_length=8)  # block | allow
    note = fields.CharField(max_length=200, default="")
    expires_at = fields.DatetimeField(null=True)  # NULL: until removed
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "risk_list_entries"
        unique_together = (("list", "value"),)
