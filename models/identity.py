"""Identity verification: uploads, the verified identity, face verifications, attempts and counters.

Every personal value is stored encrypted (``*_enc``, see core.pii) with a blind index where it is looked
up (``*_index``). Status of each check is derived from milestone times (``id_verified_at``,
``face_passed_at``, ``card_verified_at``), not stored twice.
"""

from tortoise import fields
from tortoise.models import Model

# re-exported: the enums live in models.enums, which handlers may import
from models.enums import UploadKind, FaceStatus, AttemptKind  # noqa: F401


class Upload(Model):
    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="uploads", on_delete=fields.CASCADE)
    kind = fields.CharEnumField(UploadKind, max_length=16)
    content_type = fields.CharField(max_length=32)
    size = fields.IntField()
    sha256 = fields.CharField(max_length=64)
    storage_key = fields.CharField(max_length=128, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "uploads"


class Identity(Model):
    """The person behind a user, as verified. One row per user."""

    id = fields.BigIntField(primary_key=True)
    user = fields.OneToOneField("models.User", related_name="identity", on_delete=fields.CASCADE)
    name_enc = fields.CharField(max_length=255)
    id_number_enc = fields.CharField(max_length=255)
    id_number_index = fields.CharField(max_length=64, db_index=True)
    # the ID number's last 4 characters, for the console's last-4 search (written with id_number_enc; older
    # rows are filled by the worker's ``customers.last4`` step)
    id_number_last4 = fields.CharField(max_length=4, null=True, db_index=True)
    address_enc = fields.CharField(max_length=1024, null=True)
    birth_date = fields.DateField()
    # None: valid long-term (长期). Indexed: the worker looks for cards past or near their end.
    id_valid_until = fields.DateField(null=True, db_index=True)
    # The validity date the "ID card about to expire" notice was written for (once per date: a renewed card,
    # with a new date, gets its own notice a month before it ends). Set conditionally with the notice.
    id_expiry_notified_for = fields.DateField(null=True)
    id_verified_at = fields.DatetimeField()
    face_passed_at = fields.DatetimeField(null=True)
    card_number_enc = fields.CharField(max_length=255, null=True)
    card_number_index = fields.CharField(max_length=64, null=True, db_index=True)
    card_phone_enc = fields.CharField(max_length=255, null=True)
    card_class = fields.CharField(max_length=8, null=True)
    card_bank_name = fields.CharField(max_length=64, null=True)
    card_verified_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "identities"


class FaceVerification(Model):
    """One face verification 2.0 session. Its result is fixed once final; ``consumed_at`` marks its
    single use as an intent check (e.g. signing a contract)."""

    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="face_verifications", on_delete=fields.CASCADE)
    verify_id = fields.CharField(max_length=256, unique=True)  # WeChat: at most 256 characters
    out_seq_no = fields.CharField(max_length=32, unique=True)
    id_number_index = fields.CharField(max_length=64)  # the person it was run for
    status = fields.CharEnumField(FaceStatus, max_length=16, default=FaceStatus.PENDING)
    verify_ret = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    consumed_at = fields.DatetimeField(null=True)
    consumed_by = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "face_verifications"


class VerificationAttempt(Model):
    """Evidence of every identity check: what was tried (masked), what came back, when."""

    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="verification_attempts", on_delete=fields.CASCADE)
    kind = fields.CharEnumField(AttemptKind, max_length=16)
    result = fields.CharField(max_length=32)  # "OK" or the error code
    provider_ref = fields.CharField(max_length=255, null=True)
    inputs_masked = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "verification_attempts"


class AttemptCounter(Model):
    """Attempts per user, kind and banking day, counted in the database so all workers share it."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.BigIntField()
    kind = fields.CharField(max_length=16)
    day = fields.DateField()
    count = fields.IntField(default=0)

    class Meta:
        table = "attempt_counters"
        unique_together = (("user_id", "kind", "day"),)
