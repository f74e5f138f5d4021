"""Users (keyed by WeChat openid) and their refresh-token families."""

from tortoise import fields
from tortoise.models import Model


class User(Model):
    id = fields.BigIntField(primary_key=True)
    openid = fields.CharField(max_length=64, unique=True)
    unionid = fields.CharField(max_length=64, null=True, db_index=True)
    # WeChat's session_key is a credential: encrypted, never returned.
    session_key_enc = fields.CharField(max_length=255, null=True)
    phone_enc = fields.CharField(max_length=255, null=True)
    phone_index = fields.CharField(max_length=64, null=True, db_index=True)
    # the phone's last 4 digits, for the console's last-4 search (written with phone_enc; rows bound before
    # the column existed are filled by the worker's ``customers.last4`` step)
    phone_last4 = fields.CharField(max_length=4, null=True, db_index=True)
    phone_bound_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)

    class Meta:
        table = "users"


class RefreshToken(Model):
    """One row per issued refresh token. Tokens of one login share a ``family``; a token is
    ``rotated_at`` when exchanged, and presenting a rotated token revokes the whole family."""

    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="refresh_tokens", on_delete=fields.CASCADE)
    family = fields.CharField(max_length=32, db_index=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    rotated_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True, db_index=True)  # read every few seconds (services.auth.revocation)

    class Meta:
        table = "refresh_tokens"
