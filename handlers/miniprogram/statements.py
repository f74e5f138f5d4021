"""Monthly account statements for the account's holder: a PDF sealed by the bank (PAdES) and a CSV.

Both are made from one read of the ledger (``services.accounts.statements``): every entry of the month in
China Standard Time, the opening and the closing balance. Another user's account answers exactly like one
that does not exist (404 ``ACCOUNT_NOT_FOUND``).
"""

from __future__ import annotations

import hashlib

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from handlers.common import services
from handlers.spec import PathParam, Response, id_param, operation, suffixed
from services.accounts import statements
from services.accounts.ledger import AccountNotFound
from services.accounts.statements import (
    CSV_COLUMNS,
    MONTH_PATTERN,
    StatementBeforeOpening,
    StatementMonthInFuture,
    StatementMonthInvalid,
)
from services.esign.errors import TimestampUnavailable

bp = Blueprint("mp_statements")

ACCOUNT_ID = id_param(AccountNotFound, "the account's id")
# The month is checked by the service, which answers its own code (422 STATEMENT_MONTH_INVALID for 2026-13
# or 26-01); the document states the shape.
MONTH = PathParam({"type": "string", "pattern": MONTH_PATTERN, "minLength": 7, "maxLength": 7},
                  lambda v: isinstance(v, str), StatementMonthInvalid,
                  "the month, YYYY-MM, in China Standard Time")
MONTH_ERRORS = (StatementMonthInvalid, StatementMonthInFuture, StatementBeforeOpening)
SHA256_HEADER = {"X-Content-SHA256": {"description": "SHA-256 of the body", "schema": {"type": "string"},
                                      "required": True}}
WHAT = ("every ledger entry booked in the month (China Standard Time), the opening balance (after the last entry "
        "before the month; 0 when none) and the closing balance. The current month's statement is the month so far; "
        "a month not yet begun (STATEMENT_MONTH_IN_FUTURE) or before the account was opened "
        "(STATEMENT_BEFORE_OPENING) has none.")


def _document(data: bytes, content_type: str, filename: str) -> HTTPResponse:
    return raw(data, content_type=content_type,
               headers={"Content-Disposition": f'attachment; filename="{filename}"',
                        "X-Content-SHA256": hashlib.sha256(data).hexdigest(), "Cache-Control": "private, no-store"})


@bp.get("/accounts/<account_id:int>/statements/" + suffixed("month", "pdf"))
@operation(
    summary="The account's monthly statement as a PDF signed by the bank (PAdES)",
    description="The statement: " + WHAT + " Signed by the bank like a contract (B-B; B-T with a TSA): verify it "
    "with POST /api/v1/contracts/verify (`document_kind` is `account_statement`) or any PAdES tool (pdfsig).",
    tag="accounts",
    auth=True,
    path={"account_id": ACCOUNT_ID, "month": MONTH},
    responses={200: Response(media_type="application/pdf", schema={"type": "string", "format": "binary"},
                             description="the signed statement", headers=SHA256_HEADER)},
    errors=(*MONTH_ERRORS, TimestampUnavailable),
)
async def statement_pdf(request: Request, account_id: int, month: str) -> HTTPResponse:
    ctx = services(request)
    statement = await statements.monthly(ctx, request.ctx.user_id, account_id, month)
    data = await statements.pdf(ctx, statement)
    return _document(data, "application/pdf", f"statement-{statement.month_text}.pdf")


@bp.get("/accounts/<account_id:int>/statements/" + suffixed("month", "csv"))
@operation(
    summary="The account's monthly statement as CSV",
    description="The statement: " + WHAT + " Columns: " + ",".join(CSV_COLUMNS) + ". One `opening` row, one `entry` "
    "row per ledger entry in booking order, one `closing` row; amounts in fen and in yuan; the entries' signed "
    "amounts (credit +, debit −) sum to closing − opening.",
    tag="accounts",
    auth=True,
    path={"account_id": ACCOUNT_ID, "month": MONTH},
    responses={200: Response(media_type="text/csv", schema={"type": "string"}, description="the statement",
                             headers=SHA256_HEADER)},
    errors=MONTH_ERRORS,
)
async def statement_csv(request: Request, account_id: int, month: str) -> HTTPResponse:
    statement = await statements.monthly(services(request), request.ctx.user_id, account_id, month)
    text = statements.to_csv(statement)
    return _document(text.encode(), "text/csv; charset=utf-8", f"statement-{statement.month_text}.csv")
