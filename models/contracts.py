"""E-signed contracts. Status is one of the ``ContractStatus`` values, moved only by
``services.state_machine.transition`` with the moves in ``services.esign.contracts.MACHINE``."""

from tortoise import fields
from tortoise.models import Model

# re-exported: the enums live in models.enums, which handlers may import
from models.enums import ContractStatus  # noqa: F401


class Contract(Model):
    id = fields.BigIntField(primary_key=True)
    contract_no = fields.CharField(max_length=32, unique=True)  # printed on the PDF, found by verification
    user = fields.ForeignKeyField("models.User", related_name="contracts", on_delete=fields.RESTRICT)
    template = fields.CharField(max_length=32)
    variant = fields.CharField(max_length=8, null=True)  # e.g. the account class II / III
    version = fields.CharField(max_length=32)
    subject_type = fields.CharField(max_length=32, null=True)
    subject_id = fields.CharField(max_length=64, null=True)
    status = fields.CharEnumField(ContractStatus, max_length=16, default=ContractStatus.DRAFT)
    # "<user>:<template>:<subject>" while the contract is a draft, NULL once it leaves that state: the
    # unique index makes "one open draft per user, template and subject" hold across workers and hosts.
    draft_key = fields.CharField(max_length=160, null=True, unique=True)
    unsigned_sha256 = fields.CharField(max_length=64)
    unsigned_key = fields.CharField(max_length=128)
    signed_sha256 = fields.CharField(max_length=64, null=True)
    signed_key = fields.CharField(max_length=128, null=True)
    evidence = fields.JSONField(null=True)  # masked signer, time, IP, UA, verification ids, hashes
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    signed_at = fields.DatetimeField(null=True)
    expired_at = fields.DatetimeField(null=True)
    voided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "contracts"
        indexes = (("user_id", "template", "subject_id"),)
