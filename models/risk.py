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


class RiskEvent(Model):
    """One decision, for a movement or a sensitive step, with what it was decided on.

    It is the history the rules look back on: velocity per key, an account's own amounts, where a plate
    was last seen, when a device was first seen. It is written in the same transaction as the movement
    (or the refusal), so what the next decision counts is what committed. ``counted`` says whether it
    counts as having happened: a refused debit or a blocked step does not; a held top-up does.
    PII appears only as blind indexes (``id_index``, ``bank_card``, ``etc_card``)."""

    id = fields.BigIntField(primary_key=True)
    subject = fields.CharField(max_length=16)  # services.risk.rules.SUBJECTS
    at = fields.DatetimeField()
    reference = fields.CharField(max_length=64, default="")  # the movement or step it was about
    user_id = fields.BigIntField(null=True)
    account_id = fields.BigIntField(null=True)
    amount_fen = fields.BigIntField(default=0)
    category = fields.CharField(max_length=16, null=True)
    id_index = fields.CharField(max_length=64, null=True)
    bank_card = fields.CharField(max_length=64, null=True)
    etc_card = fields.CharField(max_length=64, null=True)
    plate = fields.CharField(max_length=32, null=True)
    partner = fields.CharField(max_length=64, null=True)
    merchant = fields.CharField(max_length=64, null=True)
    device = fields.CharField(max_length=64, null=True)
    ip = fields.CharField(max_length=45, null=True)
    lat = fields.FloatField(null=True)
    lng = fields.FloatField(null=True)
    balance_fen = fields.BigIntField(null=True)  # the account's balance before it (a withdrawal's share)
    decision = fields.CharField(max_length=8, null=True)  # allow | review | block; NULL: no rule set in force
    rule_version = fields.IntField(null=True)
    reasons = fields.JSONField(null=True)
    counted = fields.BooleanField(default=True)

    class Meta:
        table = "risk_events"
        indexes = (("account_id", "at"), ("user_id", "at"), ("bank_card", "at"), ("etc_card", "at"),
                   ("plate", "at"), ("partner", "at"), ("device", "at"), ("ip", "at"), ("at",))


class RiskKeyLock(Model):
    """One row per velocity key in use (``kind``, ``value``): a decision counting a key other than the
    account locks its row first, so concurrent movements of one card, plate, partner, device or IP are
    counted one after the other, on every worker and host."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=16)
    value = fields.CharField(max_length=64)

    class Meta:
        table = "risk_key_locks"
        unique_together = (("kind", "value"),)
