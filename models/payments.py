"""WeChat Pay orders and the notifications WeChat Pay sent about them.

An order's and a refund's status move only through ``services.state_machine.transition`` (the
tables in ``services.payments.orders`` and ``services.payments.refunds``). ``PayNotification`` is the inbox: one row per notification ``id``
(unique), so a notification delivered ten times, to any number of instances, is applied once.
"""

from tortoise import fields
from tortoise.models import Model

# re-exported: the enums live in models.enums, which handlers may import
from models.enums import OrderStatus, RefundStatus  # noqa: F401

from models.columns import ExactCharField


class PaymentOrder(Model):
    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="payment_orders", on_delete=fields.RESTRICT)
    purpose = fields.CharField(max_length=16)  # obu_fee | arrears
    reference_id = fields.BigIntField()  # the binding the fee or the arrears belong to
    out_trade_no = ExactCharField(max_length=32, unique=True)
    idempotency_id = fields.BigIntField(null=True, unique=True)  # the Idempotency-Key record that made it
    amount_fen = fields.BigIntField()  # set by the server (fee table, arrears), never by the client
    description = fields.CharField(max_length=127)
    status = fields.CharEnumField(OrderStatus, max_length=16, default=OrderStatus.CREATED)
    # "<purpose>:<binding>" while the order can be paid, NULL once it cannot: one payable order per debt,
    # whichever worker or host takes the request
    open_key = fields.CharField(max_length=48, null=True, unique=True)
    prepay_id = fields.CharField(max_length=64, null=True)
    transaction_id = fields.CharField(max_length=32, null=True)
    time_expire = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)
    prepaid_at = fields.DatetimeField(null=True)
    paid_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)
    failed_at = fields.DatetimeField(null=True)
    settled = fields.JSONField(null=True)  # what the payment paid for (the debits whose arrears it settled)
    refunded_fen = fields.BigIntField(default=0)  # refunds asked for (processing or done), never above the amount

    class Meta:
        table = "payment_orders"
        indexes = (("user_id", "purpose", "reference_id"), ("status", "created_at"))


class PaymentRefund(Model):
    id = fields.BigIntField(primary_key=True)
    order = fields.ForeignKeyField("models.PaymentOrder", related_name="refunds", on_delete=fields.RESTRICT)
    out_refund_no = ExactCharField(max_length=64, unique=True)
    idempotency_id = fields.BigIntField(null=True, unique=True)
    amount_fen = fields.BigIntField()
    reason = fields.CharField(max_length=80, null=True)
    status = fields.CharEnumField(RefundStatus, max_length=16, default=RefundStatus.PROCESSING)
    refund_id = fields.CharField(max_length=32, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "payment_refunds"


class PayNotification(Model):
    id = fields.BigIntField(primary_key=True)
    event_id = fields.CharField(max_length=64, unique=True)
    event_type = fields.CharField(max_length=32)
    out_trade_no = fields.CharField(max_length=32, null=True)
    resource = fields.JSONField()  # the decrypted resource, as WeChat Pay sent it
    received_at = fields.DatetimeField(auto_now_add=True)
    outcome = fields.CharField(max_length=64)  # what applying it did

    class Meta:
        table = "pay_notifications"


class PaymentBill(Model):
    """One day's trade bill from WeChat Pay, as last compared with our orders and refunds."""

    id = fields.BigIntField(primary_key=True)
    bill_date = fields.DateField(unique=True)  # the day in China Standard Time, as WeChat Pay's bills are
    hash_value = fields.CharField(max_length=64, null=True)  # SHA1 of the bill; NULL when WeChat Pay had none
    payments = fields.IntField()
    refunds = fields.IntField()
    payments_fen = fields.BigIntField()
    refunds_fen = fields.BigIntField()
    mismatches = fields.IntField()
    checked_at = fields.DatetimeField()

    class Meta:
        table = "payment_bills"


class BillMismatch(Model):
    """A difference between WeChat Pay's bill and our books, for a person to look at (``python -m app pay
    reconcile --date D`` prints them). A day checked again replaces its unresolved mismatches; one a staff
    member resolved in the console (who, when, the note) is kept, and not found again."""

    id = fields.BigIntField(primary_key=True)
    bill_date = fields.DateField(db_index=True)
    kind = fields.CharField(max_length=32)  # services.payments.bills.KINDS
    out_trade_no = fields.CharField(max_length=32, null=True)
    out_refund_no = fields.CharField(max_length=64, null=True)
    ours_fen = fields.BigIntField(null=True)
    bill_fen = fields.BigIntField(null=True)
    resolution = fields.CharField(max_length=64, null=True)  # what reconciliation did about it, if anything
    found_at = fields.DatetimeField()
    # a person's resolution in the console (POST /admin/payments/mismatches/<id>/resolve): once only
    resolved_by_id = fields.BigIntField(null=True)  # the staff member (staff.id)
    resolved_at = fields.DatetimeField(null=True)
    resolution_note = fields.CharField(max_length=500, null=True)

    class Meta:
        table = "payment_bill_mismatches"
