"""The trade bill (交易账单) of the emulated WeChat Pay, in WeChat's text format, and the two APIs that
serve it.

``GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL|SUCCESS|REFUND[&tar_type=GZIP]`` answers
``{"hash_type":"SHA1","hash_value","download_url"}``; the download is this text (gzip-compressed with
``tar_type=GZIP``; the hash is always that of the uncompressed text, as WeChat's doc says: "原始账单
（gzip需要解压缩）的摘要值").

The layout is the one WeChat's bill pages describe (pay.weixin.qq.com/wiki/doc/apiv3/apis/chapter3_5_6 and
the v2 "下载交易账单" page it refers to for the columns):

- a header line of column names, then one line per record, every value prefixed by a backtick
  (so that a spreadsheet keeps long numbers as text);
- then the summary: a line of names (总交易单数,应结订单总金额,...) and a line of backticked values.

Amounts are yuan with two decimals. Sandbox choices where WeChat's description is silent (see
``docs/sandbox.md``): lines end with ``\\r\\n``; the text is UTF-8 without a BOM; a comma or line break
inside a free-text value (商品名称, 商户数据包) is replaced by a space (the format has no quoting);
the fee is 0.60 % of the amount rounded half up to the fen, negative on refund lines; a payment line
is dated by its ``success_time``, a refund line by the refund's success time (refunds still
PROCESSING are not in any bill yet); the bill of today is available at once (WeChat builds a day's
bill from about 10:00 the next day).
"""

from __future__ import annotations

import gzip
import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, raw

from sandbox.wechatpay.core import PayError, WeChatPay, gateway_of, param_error

BEIJING = timezone(timedelta(hours=8))
BILL_TTL_S = 30
BILL_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RATE_TEXT = "0.60%"
RATE_PER_MILLE_X10 = 6  # 0.6 % = 6 / 1000

COLUMNS_ALL = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
    "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号", "退款金额",
    "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额",
    "费率备注",
)
COLUMNS_SUCCESS = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
    "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "商品名称", "商户数据包", "手续费", "费率",
    "订单金额", "费率备注",
)
COLUMNS_REFUND = (
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
    "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "退款申请时间", "退款成功时间", "微信退款单号",
    "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率",
    "订单金额", "申请退款金额", "费率备注",
)
COLUMNS = {"ALL": COLUMNS_ALL, "SUCCESS": COLUMNS_SUCCESS, "REFUND": COLUMNS_REFUND}
SUMMARY_COLUMNS = ("总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额", "申请退款总金额")
EOL = "\r\n"


def yuan(fen: int) -> str:
    """``1234`` → ``12.34``, ``-5`` → ``-0.05``."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def fee_fen(amount_fen: int) -> int:
    """0.60 % of the amount, rounded half up to the fen."""
    return (amount_fen * RATE_PER_MILLE_X10 + 500) // 1000


def bill_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _text(value: str | None) -> str:
    return " ".join((value or "").replace(",", " ").splitlines())


@dataclass(frozen=True)
class Payment:
    appid: str
    mchid: str
    transaction_id: str
    out_trade_no: str
    openid: str
    bank_type: str
    currency: str
    total: int
    description: str
    attach: str | None
    success_at: float


@dataclass(frozen=True)
class Refund:
    payment: Payment
    refund_id: str
    out_refund_no: str
    refund: int
    created_at: float
    success_at: float


def _payment_line(p: Payment) -> dict[str, str]:
    return {
        "交易时间": bill_time(p.success_at), "公众账号ID": p.appid, "商户号": p.mchid, "特约商户号": "0", "设备号": "",
        "微信订单号": p.transaction_id, "商户订单号": p.out_trade_no, "用户标识": p.openid, "交易类型": "JSAPI",
        "交易状态": "SUCCESS", "付款银行": p.bank_type, "货币种类": p.currency, "应结订单金额": yuan(p.total),
        "代金券金额": "0.00", "退款申请时间": "", "退款成功时间": "", "微信退款单号": "0", "商户退款单号": "0",
        "退款金额": "0.00", "充值券退款金额": "0.00", "退款类型": "", "退款状态": "", "商品名称": _text(p.description),
        "商户数据包": _text(p.attach), "手续费": yuan(fee_fen(p.total)), "费率": RATE_TEXT, "订单金额": yuan(p.total),
        "申请退款金额": "0.00", "费率备注": "",
    }


def _refund_line(r: Refund) -> dict[str, str]:
    p = r.payment
    return {
        "交易时间": bill_time(r.success_at), "公众账号ID": p.appid, "商户号": p.mchid, "特约商户号": "0", "设备号": "",
        "微信订单号": p.transaction_id, "商户订单号": p.out_trade_no, "用户标识": p.openid, "交易类型": "JSAPI",
        "交易状态": "REFUND", "付款银行": p.bank_type, "货币种类": p.currency, "应结订单金额": "0.00",
        "代金券金额": "0.00", "退款申请时间": bill_time(r.created_at), "退款成功时间": bill_time(r.success_at),
        "微信退款单号": r.refund_id, "商户退款单号": r.out_refund_no, "退款金额": yuan(r.refund),
        "充值券退款金额": "0.00", "退款类型": "ORIGINAL", "退款状态": "SUCCESS", "商品名称": _text(p.description),
        "商户数据包": _text(p.attach), "手续费": yuan(-fee_fen(r.refund)), "费率": RATE_TEXT, "订单金额": "0.00",
        "申请退款金额": yuan(r.refund), "费率备注": "",
    }


def render(bill_type: str, payments: Iterable[Payment], refunds: Iterable[Refund]) -> bytes:
    """The bill text (UTF-8) of ``bill_type`` over the given records (already those of the day)."""
    lines: list[tuple[float, dict[str, str], dict[str, int]]] = []
    if bill_type in ("ALL", "SUCCESS"):
        for p in payments:
            sums = {"settle": p.total, "refund": 0, "fee": fee_fen(p.total), "order": p.total, "asked": 0}
            lines.append((p.success_at, _payment_line(p), sums))
    if bill_type in ("ALL", "REFUND"):
        for r in refunds:
            sums = {"settle": 0, "refund": r.refund, "fee": -fee_fen(r.refund), "order": 0, "asked": r.refund}
            lines.append((r.success_at, _refund_line(r), sums))
    lines.sort(key=lambda item: item[0])
    columns = COLUMNS[bill_type]
    out = [",".join(columns)]
    for _, line, _ in lines:
        out.append(",".join("`" + line[c] for c in columns))
    total = {k: sum(s[k] for _, _, s in lines) for k in ("settle", "refund", "fee", "order", "asked")}
    out.append(",".join(SUMMARY_COLUMNS))
    out.append(",".join("`" + v for v in (
        str(len(lines)), yuan(total["settle"]), yuan(total["refund"]), "0.00", yuan(total["fee"]),
        yuan(total["order"]), yuan(total["asked"]),
    )))
    return (EOL.join(out) + EOL).encode("utf-8")


def sha1_hex(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


# -- the APIs --------------------------------------------------------------------------------------


async def tradebill(pay: WeChatPay, request: Request, merchant: Any) -> dict[str, Any]:
    """``GET /v3/bill/tradebill``: render the day's bill, store it for ``BILL_TTL_S`` and answer where to fetch it."""
    args = request.args
    bill_date = args.get("bill_date")
    if not bill_date:
        raise param_error("/bill_date", None, "必填性规则校验失败，此字段为必填项", location="querystring")
    try:
        if not BILL_DATE_RE.fullmatch(bill_date):
            raise ValueError
        day = date.fromisoformat(bill_date)
    except ValueError:
        raise param_error("/bill_date", bill_date, "格式应为YYYY-MM-DD", location="querystring") from None
    if day > datetime.now(BEIJING).date():
        raise param_error("/bill_date", bill_date, "账单日期不能晚于今天", location="querystring")
    bill_type = args.get("bill_type") or "ALL"
    if bill_type not in COLUMNS:
        raise param_error("/bill_type", bill_type, "只支持ALL、SUCCESS、REFUND", location="querystring")
    tar_type = args.get("tar_type")
    if tar_type not in (None, "GZIP"):
        raise param_error("/tar_type", tar_type, "只支持GZIP", location="querystring")
    start = datetime(day.year, day.month, day.day, tzinfo=BEIJING).timestamp()
    end = start + 86400
    now = time.time()
    mchid = merchant["mchid"]
    payments, refunds = [], []
    for order in await pay.state.fetchall(
        "SELECT * FROM pay_orders WHERE mchid = ? AND trade_state = 'SUCCESS' AND success_at >= ? AND success_at < ? "
        "ORDER BY success_at", (mchid, start, end),
    ):
        payments.append(_payment(order))
    for r in await pay.state.fetchall(
        "SELECT r.*, o.appid, o.openid, o.bank_type, o.description, o.attach, o.success_at AS paid_at "
        "FROM pay_refunds r JOIN pay_orders o ON o.mchid = r.mchid AND o.out_trade_no = r.out_trade_no "
        "WHERE r.mchid = ? AND r.success_at >= ? AND r.success_at < ? AND r.success_at <= ? ORDER BY r.success_at",
        (mchid, start, end, now),
    ):
        payment = Payment(r["appid"], mchid, r["transaction_id"], r["out_trade_no"], r["openid"],
                          r["bank_type"] or "OTHERS", r["currency"], r["total"], r["description"], r["attach"],
                          r["paid_at"])
        refunds.append(Refund(payment, r["refund_id"], r["out_refund_no"], r["refund"], r["created_at"],
                              r["success_at"]))
    has_rows = (payments if bill_type != "REFUND" else []) or (refunds if bill_type != "SUCCESS" else [])
    if not has_rows:
        raise PayError(400, "NO_STATEMENT_EXIST", "当日无账单")
    content = render(bill_type, payments, refunds)
    stored = gzip.compress(content, mtime=0) if tar_type == "GZIP" else content
    token = secrets.token_urlsafe(24)
    await pay.state.execute(
        "INSERT INTO pay_bills (token, mchid, content, gzipped, expires_at) VALUES (?, ?, ?, ?, ?)",
        (token, mchid, stored, int(tar_type == "GZIP"), now + BILL_TTL_S),
    )
    await pay.state.execute("DELETE FROM pay_bills WHERE expires_at < ?", (now - 3600,))
    return {"hash_type": "SHA1", "hash_value": sha1_hex(content),
            "download_url": f"{gateway_of(request)}/v3/billdownload/file?token={token}"}


def _payment(order: Any) -> Payment:
    return Payment(order["appid"], order["mchid"], order["transaction_id"], order["out_trade_no"],
                   order["openid"], order["bank_type"] or "OTHERS", order["currency"], order["total"],
                   order["description"], order["attach"], order["success_at"])


async def billdownload(pay: WeChatPay, request: Request, merchant: Any) -> HTTPResponse:
    """``GET /v3/billdownload/file?token=``: the stored bill, while its token is valid."""
    token = request.args.get("token")
    if not token:
        raise param_error("/token", None, "必填性规则校验失败，此字段为必填项", location="querystring")
    row = await pay.state.fetchone("SELECT * FROM pay_bills WHERE token = ? AND mchid = ?",
                                   (token, merchant["mchid"]))
    if row is None or row["expires_at"] < time.time():
        raise PayError(400, "INVALID_REQUEST", "账单下载地址已失效（有效期30秒），请重新申请")
    return raw(bytes(row["content"]), content_type="application/octet-stream")
