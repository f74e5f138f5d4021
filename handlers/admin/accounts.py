"""``/admin/accounts``: find an account by its number, see its restrictions, freeze it (fraud, or
judicial with an amount held) and propose lifting a freeze (maker-checker, ``account.unfreeze``)."""

from __future__ import annotations

from urllib.parse import quote

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, redirect

from core.errors import ValidationFailed
from core.money import MAX_AMOUNT_FEN, yuan
from handlers.admin.pages import client_of, form_text, page, render_staff, staff_for
from services.staff import accounts

bp = Blueprint("admin_accounts")


@bp.get("/accounts")
@page
async def search(request: Request) -> HTTPResponse:
    number = (request.args.get("number") or "").strip()
    current = await staff_for(request, "accounts.view", view="accounts",
                              searched=f"****{number[-4:]}" if number else "")
    if number:
        found = await accounts.find(number)
        if found is not None:
            return redirect(f"/admin/accounts/{found.id}", status=303)
    return render_staff("accounts.html", current, number=number[:19], not_found=bool(number))


@bp.get("/accounts/<account_id:int>")
@page
async def one(request: Request, account_id: int) -> HTTPResponse:
    current = await staff_for(request, "accounts.view", view="account", account_id=account_id)
    return render_staff("account.html", current, a=await accounts.view(account_id), yuan=yuan, labels=accounts.LABELS,
                        flash=request.args.get("flash", "")[:200])


def _held_fen(request: Request) -> int | None:
    text = form_text(request, "held_yuan", max_len=16, required=False)
    if not text:
        return None
    whole, _, cents = text.partition(".")
    if not whole.isdigit() or (cents and (not cents.isdigit() or len(cents) > 2)):
        raise ValidationFailed("冻结金额须为元，最多两位小数", field="held_yuan")
    fen = int(whole) * 100 + int((cents or "0").ljust(2, "0"))
    if not 1 <= fen <= MAX_AMOUNT_FEN:
        raise ValidationFailed("冻结金额超出范围", field="held_yuan")
    return fen


@bp.post("/accounts/<account_id:int>/freeze")
@page
async def freeze(request: Request, account_id: int) -> HTTPResponse:
    current = await staff_for(request, "accounts.freeze")
    done = await accounts.freeze(current, client_of(request), account_id, kind=form_text(request, "kind", max_len=16),
                                 reason=form_text(request, "reason", max_len=200), held_fen=_held_fen(request),
                                 document=form_text(request, "document", max_len=64, required=False) or None)
    text = "已冻结" if done.changed else "该冻结已在生效中"
    return redirect(f"/admin/accounts/{account_id}?flash=" + quote(text), status=303)
