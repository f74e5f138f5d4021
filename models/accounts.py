"""Account applications, accounts, the ledger, and the per-person counters the rules need.

Statuses are moved only by ``services.state_machine.transition`` (tables in
``services.accounts.opening`` and, for card transfers, ``services.accounts.funding``); balances only by ``services.accounts.ledger``, which writes a
``LedgerEntry`` in the same transaction as every balance change.
"""

from tortoise import fields
from tortoise.models import Model

# re-exported: the enums live in models.enums, which handlers may import
from models.enums import (  # noqa: F401
    ApplicationStatus, AccountStatus, EntryDirection, EntryKind, RestrictionCode, TransferDirection, TransferPurpose,
    TransferStatus,
)


class AccountApplication(Model):
    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="account_applications", on_delete=fields.RESTRICT)
    account_class = fields.CharField(max_length=4)  # "II" | "III"
    status = fields.CharEnumField(ApplicationStatus, max_length=24, default=ApplicationStatus.DRAFT)
    rules_version = fields.CharField(max_length=16)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    identity_verified_at = fields.DatetimeField(null=True)
    signed_at = fields.DatetimeField(null=True)
    opened_at = fields.DatetimeField(null=True)
    rejected_at = fields.DatetimeField(null=True)
    expired_at = fields.DatetimeField(null=True)
    rejection_code = fields.CharField(max_length=32, null=True)
    contract_id = fields.BigIntField(null=True)  # the signed account agreement
    account_id = fields.BigIntField(null=True, unique=True)  # the account it opened (one at most)

    class Meta:
        table = "account_applications"
        indexes = (("user_id", "status"),)


class Account(Model):
    """A remote Class II/III electronic account. ``balance_fen`` moves only with a ledger entry.

    The outflow counters are the limits' state, kept on the row the ledger locks anyway: the amount
    counted for ``outflow_day`` (China Standard Time) and ``outflow_year``; a movement on a new day or
    year starts the counter again. ``pending_in_fen`` reserves room under a balance cap for top-ups
    whose money is on its way from the bound card, so the cap holds before any money moves."""

    id = fields.BigIntField(primary_key=True)
    number = fields.CharField(max_length=19, unique=True)  # bank prefix + digits + Luhn check digit
    # its last 4 digits, for the console's last-4 search (written with the number; older rows: the worker's
    # ``customers.last4`` step)
    number_last4 = fields.CharField(max_length=4, null=True, db_index=True)
    user = fields.ForeignKeyField("models.User", related_name="accounts", on_delete=fields.RESTRICT)
    holder_index = fields.CharField(max_length=64, db_index=True)  # blind index of the holder's ID number
    account_class = fields.CharField(max_length=4)
    status = fields.CharEnumField(AccountStatus, max_length=16, default=AccountStatus.ACTIVE)
    rules_version = fields.CharField(max_length=16)
    balance_fen = fields.BigIntField(default=0)
    pending_in_fen = fields.BigIntField(default=0)
    outflow_day = fields.DateField(null=True)
    outflow_day_fen = fields.BigIntField(default=0)
    outflow_year = fields.IntField(null=True)
    outflow_year_fen = fields.BigIntField(default=0)
    bound_card_enc = fields.CharField(max_length=255)
    bound_card_index = fields.CharField(max_length=64)
    bound_card_masked = fields.CharField(max_length=24)
    opened_at = fields.DatetimeField()
    closed_at = fields.DatetimeField(null=True)  # when closing ended (its payout paid); the number stays taken
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "accounts"
        indexes = (("holder_index", "account_class"),)


class AccountBoundCard(Model):
    """Every card an account has been bound to, the one bound now with ``replaced_at`` null: the card
    opened with (or, for an account opened before this table, carried over by its migration), then each
    new bound card. Never deleted: the old card's reference stays with the account. The card number is
    encrypted as on the account (purpose ``account.bound_card``) and blind-indexed; ``face_verification_id``
    is the face verification that authorised binding it (none at opening, whose checks are the
    application's). Written only by ``services.accounts.bound_card`` and the opening, under the account's
    row lock (or with the account's creation)."""

    id = fields.BigIntField(primary_key=True)
    account = fields.ForeignKeyField("models.Account", related_name="bound_cards", on_delete=fields.RESTRICT)
    card_enc = fields.CharField(max_length=255)
    card_index = fields.CharField(max_length=64)
    card_masked = fields.CharField(max_length=24)
    card_class = fields.CharField(max_length=8, null=True)  # as the card network said: I | credit
    bank_name = fields.CharField(max_length=64, null=True)
    check_ref = fields.CharField(max_length=64, null=True)  # the card network's request id of the same-name check
    face_verification_id = fields.BigIntField(null=True)
    bound_at = fields.DatetimeField()
    replaced_at = fields.DatetimeField(null=True)

    class Meta:
        table = "account_bound_cards"
        indexes = (("account_id", "replaced_at"),)


class AccountRestriction(Model):
    """One restriction of an account, in force from ``created_at`` until ``lifted_at``. Never deleted: the
    history of who restricted the account, when, why, and who lifted it, stays with the account.

    ``set_by`` is ``holder``, ``system`` or ``operator:<name>``. A judicial freeze with ``held_fen`` holds
    that amount only: the account lets out what its balance has above the sum held by the freezes in
    force; any other restriction stops every outflow. Written only by ``services.accounts.restrictions``,
    under the account's row lock, with the account's status moved in the same transaction."""

    id = fields.BigIntField(primary_key=True)
    account = fields.ForeignKeyField("models.Account", related_name="restriction_rows", on_delete=fields.RESTRICT)
    code = fields.CharEnumField(RestrictionCode, max_length=24)
    set_by = fields.CharField(max_length=80)
    reason = fields.CharField(max_length=255)
    held_fen = fields.BigIntField(null=True)  # a judicial freeze of an amount, not of the whole account
    document_ref = fields.CharField(max_length=64, null=True)  # the court's or authority's document number
    created_at = fields.DatetimeField()
    lifted_at = fields.DatetimeField(null=True)
    lifted_by = fields.CharField(max_length=80, null=True)
    lift_reason = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "account_restrictions"
        indexes = (("account_id", "lifted_at"),)


class LedgerEntry(Model):
    """One movement of money, written in the transaction that changes the balance. Never updated.
    ``(account, kind, reference)`` is unique: posting the same movement twice finds the first."""

    id = fields.BigIntField(primary_key=True)
    account = fields.ForeignKeyField("models.Account", related_name="entries", on_delete=fields.RESTRICT)
    direction = fields.CharEnumField(EntryDirection, max_length=8)
    kind = fields.CharEnumField(EntryKind, max_length=24)
    amount_fen = fields.BigIntField()  # > 0; the direction gives the sign
    balance_after_fen = fields.BigIntField()
    counts_as_outflow = fields.BooleanField(default=False)  # counted against the class's outflow limits
    reference = fields.CharField(max_length=64)
    counterparty = fields.CharField(max_length=128, null=True)
    booked_at = fields.DatetimeField()
    booked_day = fields.DateField()  # China Standard Time

    class Meta:
        table = "ledger_entries"
        unique_together = (("account_id", "kind", "reference"),)
        indexes = (("account_id", "id"),)


class AccountHolder(Model):
    """One row per person (blind index of the ID number): locked while an account is opened for them,
    so the per-person count limits hold across workers; and the Class III in+out total, whose threshold
    means the person's ID must be collected again."""

    holder_index = fields.CharField(max_length=64, primary_key=True)
    # Written by every opening: on a multi-primary cluster, where a row lock taken on one node does not
    # stop another node, two openings for one person still conflict here at commit and one runs again.
    opened_accounts = fields.IntField(default=0)
    class_iii_flow_fen = fields.BigIntField(default=0)
    id_collection_required_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "account_holders"


class CardTransfer(Model):
    """Money between an account and its bound card through the card network, keyed by the request id
    sent: a lost answer is resolved by asking the network about that id, never by sending another."""

    id = fields.BigIntField(primary_key=True)
    request_id = fields.CharField(max_length=64, unique=True)  # what the card network knows it by
    # The Idempotency-Key record it was made under: a retry of the request finds this transfer.
    idempotency_id = fields.BigIntField(null=True, unique=True)
    account = fields.ForeignKeyField("models.Account", related_name="transfers", on_delete=fields.RESTRICT)
    user_id = fields.BigIntField()
    direction = fields.CharEnumField(TransferDirection, max_length=8)
    # closing: the account's whole balance, and settling it closes the account (or, declined, reopens it)
    purpose = fields.CharEnumField(TransferPurpose, max_length=16, default=TransferPurpose.FUNDING)
    amount_fen = fields.BigIntField()
    status = fields.CharEnumField(TransferStatus, max_length=16, default=TransferStatus.PENDING)
    decline_reason = fields.CharField(max_length=32, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)
    checked_at = fields.DatetimeField(null=True)  # last time a pending transfer was asked about
    # When it was last let go to the network after its creation: an operator releasing a held transfer, or
    # the user's retry sending again one the network had not heard of. Giving up on it counts from here.
    released_at = fields.DatetimeField(null=True)

    class Meta:
        table = "card_transfers"
        indexes = (("status", "created_at"),)
