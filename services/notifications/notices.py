"""The subscribe messages a change writes to the outbox, in the transaction of that change: a partner
debit booked (``debit_booked``) or left in arrears (``arrears``), an account reported lost
(``loss_reported``), the holder's ID card about to expire (``id_expiring``), an account closed
(``account_closed``). Written there, each exists exactly once per change: a repeated or concurrent
request for the same debit finds the debit already recorded and writes nothing
(``services.partners.debits``), a repeated loss report finds the report in force
(``services.accounts.restrictions``), the expiry notice is written with the conditional mark of its
validity date (``services.accounts.id_expiry``), and only the one transaction that closes an account
writes its notice. The worker sends them (``services.notifications``);
a user who never accepted the template (WeChat 43101) is given up at once.

Their data carries no personal data beyond what the holder's own WeChat shows: amounts, the kind of
debit, the time, the account's last four digits. A notice whose template is not configured is not sent.
"""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from datetime import date

from core.clock import CHINA_TZ
from core.pii import mask_card
from models.accounts import Account, AccountRestriction
from models.users import User
from models.partners import PartnerDebit
from services import outbox
from services.accounts.rules import rules_for
from services.context import ServiceContext

KIND = "subscribe_message"
CATEGORY_LABELS = {"toll": "ETC通行费", "parking": "停车费", "fuel": "加油费", "carwash": "洗车费"}


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}元"


async def _enqueue(conn: BaseDBAsyncClient, user_id: int, template_id: str, page: str, data: dict) -> None:
    user = await User.get(id=user_id).using_db(conn)
    await outbox.enqueue(conn, KIND, {"touser": user.openid, "template_id": template_id, "page": page,
                                      "data": {key: {"value": value} for key, value in data.items()}})


async def debit_booked(ctx: ServiceContext, conn: BaseDBAsyncClient, debit: PartnerDebit, user_id: int) -> None:
    """扣款成功通知: the debit was booked on the account."""
    template_id = ctx.settings.debit_template_id
    if not template_id:
        return
    account = await Account.get(id=debit.account_id).using_db(conn)
    await _enqueue(conn, user_id, template_id, f"pages/account/account?id={account.id}", {
        "amount1": yuan(debit.amount_fen),
        "thing2": CATEGORY_LABELS.get(debit.category, "代扣"),
        "time3": debit.booked_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M"),
        "character_string4": account.number[-4:],
    })


async def arrears(ctx: ServiceContext, conn: BaseDBAsyncClient, debit: PartnerDebit, user_id: int) -> None:
    """欠费提醒: the account could not pay the debit; it is owed on the binding (paid on the ETC pay page)."""
    template_id = ctx.settings.arrears_template_id
    if not template_id:
        return
    await _enqueue(conn, user_id, template_id, f"pages/etc/pay/pay?binding_id={debit.binding_id}", {
        "amount1": yuan(debit.amount_fen),
        "thing2": CATEGORY_LABELS.get(debit.category, "代扣"),
        "date3": debit.booked_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d"),
        "thing4": "扣款未成功，请在小程序中补缴",
    })


async def loss_reported(ctx: ServiceContext, conn: BaseDBAsyncClient, account: Account,
                        report: AccountRestriction) -> None:
    """账户挂失通知: the account was reported lost (only when the report is new, not for a repeat)."""
    template_id = ctx.settings.loss_reported_template_id
    if not template_id:
        return
    await _enqueue(conn, account.user_id, template_id, f"pages/account/account?id={account.id}", {
        "thing1": f"个人{rules_for(account.account_class).label}电子账户",
        "character_string2": mask_card(account.number),
        "time3": report.created_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M"),
        "thing4": "解除挂失需本人人脸核验",
    })


async def id_expiring(ctx: ServiceContext, conn: BaseDBAsyncClient, user_id: int, valid_until: date) -> None:
    """证件到期提醒: the holder's ID card ends on ``valid_until``; after it the accounts are restricted until
    the renewed card is verified with a face check (the page opens the ID card page for a renewal)."""
    template_id = ctx.settings.id_expiry_template_id
    if not template_id:
        return
    await _enqueue(conn, user_id, template_id, "pages/identity/idcard/idcard?renew=1", {
        "thing1": "居民身份证",
        "date2": valid_until.isoformat(),
        "thing3": "到期后账户将受限，请及时更新",
    })


async def account_closed(ctx: ServiceContext, conn: BaseDBAsyncClient, account: Account, paid_out_fen: int) -> None:
    """销户成功通知: the account is closed, its balance paid to the bound card (written in the transaction
    that closes it: once)."""
    template_id = ctx.settings.account_closed_template_id
    if not template_id:
        return
    await _enqueue(conn, account.user_id, template_id, f"pages/account/account?id={account.id}", {
        "character_string1": account.number[-4:],
        "amount2": yuan(paid_out_fen),
        "time3": account.closed_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M"),
        "thing4": "余额已转入绑定银行卡" if paid_out_fen else "账户已销户",
    })
