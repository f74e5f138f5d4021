"""Vehicles and ETC-card bindings.

A vehicle is a user's plate and colour (GA 36-2018). A binding ties an ETC user card (and the vehicle it
belongs to) to one of the user's Class II accounts for auto-debit; its status moves only through
``services.state_machine.transition`` (the table in ``services.etc.bindings``). While a binding is not
unbound it holds ``card_key`` and ``plate_key``: unique columns, so one card and one plate are bound at
most once across every user, whichever worker or host takes the request.
"""

from tortoise import fields
from tortoise.models import Model

# re-exported: the enums live in models.enums, which handlers may import
from models.enums import BindingStatus  # noqa: F401


class Vehicle(Model):
    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="vehicles", on_delete=fields.RESTRICT)
    plate_number = fields.CharField(max_length=8)
    plate_color = fields.CharField(max_length=16)
    # "<user>:<plate>_<colour>" while registered, NULL once removed: one registration per user and car.
    active_key = fields.CharField(max_length=64, null=True, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    removed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "vehicles"
        indexes = (("user_id", "removed_at"),)


class EtcBinding(Model):
    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("models.User", related_name="etc_bindings", on_delete=fields.RESTRICT)
    vehicle = fields.ForeignKeyField("models.Vehicle", related_name="bindings", on_delete=fields.RESTRICT)
    account = fields.ForeignKeyField("models.Account", related_name="etc_bindings", on_delete=fields.RESTRICT)
    card_enc = fields.CharField(max_length=255)  # the ETC card number, encrypted
    card_index = fields.CharField(max_length=64, db_index=True)  # its blind index, for partners' lookups
    card_masked = fields.CharField(max_length=24)
    obu_id = fields.CharField(max_length=20, null=True)
    plate = fields.CharField(max_length=32, db_index=True)  # "<plate>_<colour>", as ETC keys a vehicle
    status = fields.CharEnumField(BindingStatus, max_length=16, default=BindingStatus.PENDING)
    card_key = fields.CharField(max_length=64, null=True, unique=True)  # card_index while not unbound
    plate_key = fields.CharField(max_length=32, null=True, unique=True)  # plate while not unbound
    contract_id = fields.BigIntField(null=True)  # the auto-debit authorisation
    arrears_fen = fields.BigIntField(default=0)  # debits refused for want of money or limit, still owed
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()  # a binding still pending then lets go of its card and plate
    activated_at = fields.DatetimeField(null=True)
    suspended_at = fields.DatetimeField(null=True)
    unbound_at = fields.DatetimeField(null=True)
    unbind_reason = fields.CharField(max_length=32, null=True)

    class Meta:
        table = "etc_bindings"
        indexes = (("user_id", "status"),)
