"""The bank's staff (console logins, not WeChat users) and their server-side sessions."""

from tortoise import fields
from tortoise.models import Model

from models.enums import ProposalStatus, StaffRole


class Staff(Model):
    """One staff member. The password is an argon2id hash; the TOTP secret is encrypted like personal
    data (``ctx.pii``, purpose ``staff.totp``). Failed logins and the lockout live in the row, moved by
    conditional UPDATEs, so every worker and host sees the same count."""

    id = fields.BigIntField(primary_key=True)
    username = fields.CharField(max_length=32, unique=True)
    password_hash = fields.CharField(max_length=255)
    totp_secret_enc = fields.CharField(max_length=255)
    # the last RFC 6238 time step a code was accepted for: a code is good once (no replay within its window)
    totp_last_step = fields.BigIntField(null=True)
    role = fields.CharEnumField(StaffRole, max_length=16)
    disabled = fields.BooleanField(default=False)
    failed_logins = fields.IntField(default=0)  # in a row; a successful login resets it
    locked_until = fields.DatetimeField(null=True)
    last_login_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "staff"


class StaffSession(Model):
    """A console login: the cookie carries a random token, the row its SHA-256. Refused past
    ``expires_at`` (absolute lifetime), after ``ADMIN_IDLE_TIMEOUT_S`` without use, or once ended."""

    id = fields.BigIntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    staff = fields.ForeignKeyField("models.Staff", related_name="sessions", on_delete=fields.CASCADE)
    csrf_token = fields.CharField(max_length=64)  # every form of the session carries it
    ip = fields.CharField(max_length=64)
    user_agent = fields.CharField(max_length=256)
    created_at = fields.DatetimeField()
    last_seen_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "staff_sessions"
        indexes = (("staff_id", "ended_at"),)


class StaffLoginShadow(Model):
    """Failed logins of a username no staff member has, counted and locked exactly as a member's row is,
    so that the lockout does not tell which usernames exist. Keyed by the name's SHA-256."""

    username_hash = fields.CharField(max_length=64, primary_key=True)
    failed_logins = fields.IntField(default=0)
    locked_until = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "staff_login_shadows"


class StaffProposal(Model):
    """A sensitive action proposed by one staff member, applied only when a different member with the
    role approves it (``services.staff.proposals``). ``params`` are the action's exact parameters, as
    they will be applied (nothing secret, personal data masked or by reference); ``pending_key`` is the
    digest of action and parameters while pending and NULL after, so the database refuses a second
    pending proposal of the same action (a unique column holds any number of NULLs)."""

    id = fields.BigIntField(primary_key=True)
    action = fields.CharField(max_length=48)
    params = fields.JSONField()
    summary = fields.CharField(max_length=200)  # what a checker reads (masked)
    reason = fields.CharField(max_length=200)
    status = fields.CharEnumField(ProposalStatus, max_length=16, default=ProposalStatus.PENDING)
    pending_key = fields.CharField(max_length=64, null=True, unique=True)
    proposed_by = fields.ForeignKeyField("models.Staff", related_name="proposals_made", on_delete=fields.RESTRICT)
    proposed_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    decided_by = fields.ForeignKeyField("models.Staff", related_name="proposals_decided", null=True,
                                        on_delete=fields.RESTRICT)
    decided_at = fields.DatetimeField(null=True)
    decision_note = fields.CharField(max_length=200, default="")
    applied_at = fields.DatetimeField(null=True)
    result = fields.JSONField(null=True)  # what the action answered (masked), or the refusal's code

    class Meta:
        table = "staff_proposals"
        indexes = (("status", "expires_at"),)


class StaffRevealGrant(Model):
    """One reveal beyond the daily allowance, approved by a second member (maker-checker ``pii.reveal``):
    for one member, one customer's one field, used once (``used_at``, set by a conditional UPDATE)."""

    id = fields.BigIntField(primary_key=True)
    proposal_id = fields.BigIntField(null=True, unique=True)  # None: granted by break glass
    staff_id = fields.BigIntField()
    user_id = fields.BigIntField()
    field = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "staff_reveal_grants"
        indexes = (("staff_id", "user_id", "field"),)


class StaffRevealCount(Model):
    """How many personal values a member has revealed on a China Standard Time day, counted in the database
    so that every worker and host shares the allowance (``ADMIN_REVEAL_DAILY_ALLOWANCE``): raised only by a
    conditional UPDATE (``count < allowance``) in the reveal's own transaction (services.staff.pii)."""

    id = fields.BigIntField(primary_key=True)
    staff_id = fields.BigIntField()
    day = fields.DateField()
    count = fields.IntField(default=0)

    class Meta:
        table = "staff_reveal_counts"
        unique_together = (("staff_id", "day"),)
