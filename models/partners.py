"""Partners of the open API, the nonces their signed requests spent, and their debits and refunds.

A partner's secret is needed in the clear to check an HMAC, so it is encrypted (``core.pii``), never
hashed; a rotated secret stays valid until ``previous_valid_until``. ``(partner, nonce)``,
``(partner, out_trade_no)`` and ``(partner, out_refund_no)`` are unique: a replayed request, a retried
debit and a retried refund each find the first. Those numbers and the nonces compare exactly, case
included, on MySQL too (``models.columns.ExactCharField``). A debit's status moves only through
``services.state_machine.transition`` (the table in ``services.partners.debits``).
"""

from tortoise import fields
from tortoise.models import Model

# re-exported: the enums live in models.enums, which handlers may import
from models.enums import PartnerStatus, DebitStatus  # noqa: F401

from models.columns import ExactCharField


class Partner(Model):
    id = fields.BigIntField(primary_key=True)
    app_id = fields.CharField(max_length=18, unique=True)  # "pt" + 16 hex digits
    name = fields.CharField(max_length=64)
    secret_enc = fields.CharField(max_length=255)
    previous_secret_enc = fields.CharField(max_length=255, null=True)
    previous_valid_until = fields.DatetimeField(null=True)
    scopes = fields.JSONField()  # list of scope names
    callback_url = fields.CharField(max_length=512, null=True)
    # the ETC card networks (4-digit network numbers) whose cards this partner issues: it hears of
    # bindings of those cards only (services.partners.notify)
    card_networks = fields.JSONField(null=True)  # None: none
    status = fields.CharEnumField(PartnerStatus, max_length=16, default=PartnerStatus.ACTIVE)
    created_at = fields.DatetimeField(auto_now_add=True)
    rotated_at = fields.DatetimeField(null=True)
    disabled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "partners"


class PartnerNonce(Model):
    id = fields.BigIntField(primary_key=True)
    partner = fields.ForeignKeyField("models.Partner", related_name="nonces", on_delete=fields.CASCADE)
    nonce = ExactCharField(max_length=64)
    created_at = fields.DatetimeField()

    class Meta:
        table = "partner_nonces"
        unique_together = (("partner_id", "nonce"),)
        indexes = (("created_at",),)


class PartnerDebit(Model):
    id = fields.BigIntField(primary_key=True)
    partner = fields.ForeignKeyField("models.Partner", related_name="debits", on_delete=fields.RESTRICT)
    out_trade_no = ExactCharField(max_length=64)
    request_hash = fields.CharField(max_length=64)  # what a retry under this number must match
    binding = fields.ForeignKeyField("models.EtcBinding", related_name="debits", on_delete=fields.RESTRICT)
    account_id = fields.BigIntField()
    category = fields.CharField(max_length=16)
    amount_fen = fields.BigIntField()
    refunded_fen = fields.BigIntField(default=0)
    status = fields.CharEnumField(DebitStatus, max_length=16)
    refusal_code = fields.CharField(max_length=32, null=True)
    merchant = fields.CharField(max_length=64)
    detail = fields.CharField(max_length=256, null=True)
    occurred_at = fields.DatetimeField()
    booked_at = fields.DatetimeField()
    booked_day = fields.DateField()  # China Standard Time: the statement it belongs to
    # risk control's decision (services.risk): allow | review | block, the rule set's version, and the
    # rules that fired (shadow rules too, marked), with the values they saw; NULL when no rule set is loaded
    risk_decision = fields.CharField(max_length=8, null=True)
    risk_version = fields.IntField(null=True)
    risk_reasons = fields.JSONField(null=True)
    # a reviewer's verdict on a debit risk control refused (the console's queue): confirmed | false_positive
    review_verdict = fields.CharField(max_length=16, null=True)
    reviewed_by = fields.CharField(max_length=64, null=True)  # staff:ID
    reviewed_at = fields.DatetimeField(null=True)
    review_note = fields.CharField(max_length=200, null=True)

    class Meta:
        table = "partner_debits"
        unique_together = (("partner_id", "out_trade_no"),)
        indexes = (("partner_id", "booked_day"), ("binding_id", "status"), ("account_id", "booked_at"))


class PartnerRefund(Model):
    id = fields.BigIntField(primary_key=True)
    partner = fields.ForeignKeyField("models.Partner", related_name="refunds", on_delete=fields.RESTRICT)
    debit = fields.ForeignKeyField("models.PartnerDebit", related_name="refunds", on_delete=fields.RESTRICT)
    out_refund_no = ExactCharField(max_length=64)
    request_hash = fields.CharField(max_length=64)
    amount_fen = fields.BigIntField()
    reason = fields.CharField(max_length=128, null=True)
    refunded_at = fields.DatetimeField()
    booked_day = fields.DateField()

    class Meta:
        table = "partner_refunds"
        unique_together = (("partner_id", "out_refund_no"),)
        indexes = (("partner_id", "booked_day"),)
