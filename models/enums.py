"""The status and kind enums of the models, in one module that handlers may import.

Handlers validate and shape these values (a query's ``status=…``, a response's ``"status": …``) but never
touch a table; importing the enums from here keeps that true by construction, and the import-linter
contract ``handlers import no model class`` (pyproject.toml) holds them to it. The model modules import
their enums from here and re-export them, so ``from models.accounts import ApplicationStatus`` in
services and tests keeps working. Imports nothing but the standard library: loading it loads no model.
"""

from __future__ import annotations

from enum import StrEnum

# -- accounts


class ApplicationStatus(StrEnum):
    DRAFT = "draft"
    IDENTITY_VERIFIED = "identity_verified"
    SIGNED = "signed"
    OPENED = "opened"
    REJECTED = "rejected"
    EXPIRED = "expired"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    RESTRICTED = "restricted"  # one or more restrictions in force (``AccountRestriction``): outflows stop
    CLOSING = "closing"  # its whole balance on its way to the bound card: nothing goes out, nothing books
    CLOSED = "closed"  # for good: nothing books; it counts no more toward the per-person limit


class RestrictionCode(StrEnum):
    LOSS_REPORTED = "LOSS_REPORTED"  # the holder reported the phone (or the account's access) lost
    ID_EXPIRED = "ID_EXPIRED"  # the holder's ID card is past its validity
    FRAUD_FREEZE = "FRAUD_FREEZE"  # the bank, on suspicion of fraud
    JUDICIAL_FREEZE = "JUDICIAL_FREEZE"  # the bank, on a court's or authority's order; may hold an amount only


class EntryDirection(StrEnum):
    CREDIT = "credit"  # money in
    DEBIT = "debit"  # money out


class EntryKind(StrEnum):
    """What a ledger entry books. Partner debits are booked by category (a toll, parking, fuel, a car
    wash: consumption, counted as outflow), and their refunds by the category of the debit refunded."""

    TOP_UP = "top_up"  # from the bound card
    WITHDRAWAL = "withdrawal"  # to the bound card
    WITHDRAWAL_REVERSAL = "withdrawal_reversal"  # a withdrawal the card network declined, returned
    CLOSING_PAYOUT = "closing_payout"  # closing: the whole balance to the bound card
    CLOSING_REVERSAL = "closing_reversal"  # a closing payout the card network declined, returned
    TOLL = "toll"
    PARKING = "parking"
    FUEL = "fuel"
    CARWASH = "carwash"
    TOLL_REFUND = "toll_refund"
    PARKING_REFUND = "parking_refund"
    FUEL_REFUND = "fuel_refund"
    CARWASH_REFUND = "carwash_refund"


class TransferDirection(StrEnum):
    PULL = "pull"  # from the bound card into the account (a top-up)
    PUSH = "push"  # from the account to the bound card (a withdrawal)


class TransferPurpose(StrEnum):
    FUNDING = "funding"  # a top-up or a withdrawal the holder asked for
    CLOSING = "closing"  # the whole balance paid out to the bound card when the account closes


class TransferStatus(StrEnum):
    HELD = "held"  # risk control holds it for an operator (money reserved or debited, nothing sent)
    PENDING = "pending"  # sent, or about to be; the card network's answer not known yet
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


# -- contracts


class ContractStatus(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"
    EXPIRED = "expired"
    VOID = "void"


# -- etc


class BindingStatus(StrEnum):
    PENDING = "pending"  # created; the auto-debit authorisation is not signed yet
    ACTIVE = "active"  # partners may debit
    SUSPENDED = "suspended"  # debits refused until it is active again
    UNBOUND = "unbound"  # ended (by the user, or a pending one that expired)


# -- identity


class UploadKind(StrEnum):
    ID_FRONT = "id_front"
    ID_BACK = "id_back"
    SIGNATURE = "signature"


class FaceStatus(StrEnum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    EXPIRED = "expired"


class AttemptKind(StrEnum):
    ID_CARD = "id_card"
    FACE = "face"
    BANK_CARD = "bank_card"


# -- infra


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    GAVE_UP = "gave_up"


# -- partners


class PartnerStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class DebitStatus(StrEnum):
    SUCCEEDED = "succeeded"  # booked on the account
    ARREARS = "arrears"  # refused for the balance or a limit; owed on the binding
    SETTLED = "settled"  # arrears the customer paid later
    REFUSED = "refused"  # risk control (RISK_BLOCKED, RISK_REVIEW), or a restricted/closed account: nothing booked or owed


# -- payments


class OrderStatus(StrEnum):
    CREATED = "created"  # ours only: WeChat Pay not asked yet (or it failed to answer)
    PREPAID = "prepaid"  # WeChat Pay has the order: the user can pay
    PAID = "paid"
    CLOSED = "closed"  # not paid in time, or closed on purpose
    FAILED = "failed"  # the payment failed (PAYERROR)


class RefundStatus(StrEnum):
    PROCESSING = "processing"  # asked of WeChat Pay, not yet done
    SUCCESS = "success"
    ABNORMAL = "abnormal"  # WeChat Pay could not return the money (e.g. the card is closed): a person acts
    CLOSED = "closed"  # refused or closed: the amount is refundable again


# -- staff console --


class StaffRole(StrEnum):
    """What a staff member may do is decided by role, in one table: ``services.staff.permissions``."""

    VIEWER = "viewer"  # reads dashboards and lists, personal data masked
    REVIEWER = "reviewer"  # decides held transfers and risk-refused items
    OPERATOR = "operator"  # customer service: freezes, refunds, partner care
    RISK = "risk"  # rule sets and block/allow lists
    ADMIN = "admin"  # staff and settings


class ProposalStatus(StrEnum):
    """A sensitive staff action waiting for a second person (maker-checker, ``services.staff.proposals``):
    pending → approved (claimed by one checker) → applied | failed; pending → rejected | expired."""

    PENDING = "pending"
    APPROVED = "approved"  # a different member with the role said yes; the action is being applied
    APPLIED = "applied"
    FAILED = "failed"  # approved, but the action was refused (e.g. the transfer was no longer held)
    REJECTED = "rejected"
    EXPIRED = "expired"
