"""Upstream faults, in one place: what a request does when WeChat, WeChat Pay or the card network times
out, answers 5xx, answers slowly, or loses its reply after the work was done (the emulators' fault
injection, ``POST /sandbox/control/faults``, docs/sandbox.md *Faults*).

The test server gives up on an upstream call after ``http_timeout_s`` (1 s) and tries it at most
``upstream_retries + 1`` (3) times, so no caller waits longer than ``(upstream_retries + 1) ×
http_timeout_s`` per upstream call plus ``MARGIN_S`` (the backoff and the request's own work): every
failing case below is timed against that bound. Attempts are counted by the faults the emulator used up
(a request the client gave up on during a delay is cancelled before the call log records it) and, for
answered calls, by the call log (``GET /sandbox/control/calls``). Error codes are checked against the
operation's documented ones (``/docs/openapi.json``).

What is proved:

* **WeChat** (``integrations/wechat``, ``services/wechat_errors.py``)

  ===================================  =========  ==========================  =======  ===============================
  call (fault key), made by            kind       hung past timeout / 5xx     slow     reply lost after the work
  ===================================  =========  ==========================  =======  ===============================
  sns/jscode2session, login            one-shot   503 UPSTREAM_UNAVAILABLE,   200,     503, 1 call; the code is spent,
                                                  1 attempt                   1 call   no user made
  wxa/business/getuserphonenumber      one-shot   503, 1 attempt              200, 1   503, 1 call; no phone bound
  cgi-bin/message/subscribe/send       one-shot   503 (translated), 1         sent, 1  503, 1 call; 1 message
  cv/ocr/idcard, ID-card check         idempot.   503, 1 + retries attempts   200, 2   sent again: 200, 3 calls
  cgi-bin/stable_token, access token   idempot.   5xx: 503, 1 + retries;      200, 1   sent again: 200
                                                  the phone code is unspent
  ===================================  =========  ==========================  =======  ===============================

* **WeChat Pay** (``integrations/wechatpay.py``, ``services/payments``): one attempt per call.

  - ``POST /payments/orders`` (jsapi): hung or reply lost → 503 WECHATPAY_UNAVAILABLE in time; 5xx → a
    documented 5xx; the same ``Idempotency-Key`` afterwards answers the order, prepaid: one
    ``PaymentOrder``, one order and one prepay_id at WeChat Pay, paid once. Slow → 201.
  - ``GET /payments/orders/{id}`` (query): hung, 5xx → 200 with what we knew (``prepaid``; the operation
    documents no 503) in time; ``paid`` once WeChat Pay answers, applied once. Slow → ``paid``.
  - ``POST /payments/orders/{id}/refunds``: hung or reply lost → 503 in time, the refund stays
    ``processing`` and reserved; the same key afterwards answers that refund; WeChat Pay's refunds and
    ``PaymentOrder.refunded_fen`` agree; nothing beyond the fee can be refunded. 5xx before the work →
    a documented 5xx, nothing refunded anywhere. Slow → 201.

* **The card network** (``integrations/cardnet.py``, ``services/accounts/funding.py``): a transfer
  (``cardnet/v1/transfers``) is sent once; a lost answer is asked about
  (``cardnet/v1/transfers/{request_id}``), at most 1 + retries times.

  ===================================  ======================  ==========================================
  fault (top-up; withdrawal: *)        first answer, in time   settled by
  ===================================  ======================  ==========================================
  hung before the network *, 5xx       202 pending, nothing    the same key: still 202; the job closes it
  before it (nothing moved)            moved                   (NOT_RECEIVED), the same key is then 422
                                                               CARD_DECLINED, a new key: 201
  network unreachable *                503 CARD_NETWORK_       the same key: 201
                                       UNAVAILABLE
  reply late, lost *, 5xx after *      201 (asked at once)     -
  the move
  reply lost and the query down *      202 pending             the same key: 201
  reply late and the query hung        202 pending             the reconciliation job (the key: 201)
  slow                                 201                     -
  ===================================  ======================  ==========================================

  and in every case: the card moved exactly once (the network's transfers and the card's balance), the
  account holds what the answers say, nothing stays pending or reserved, ``ledger check`` holds.

**Faults this file found, fixed with it** (each test below failed before):

* a WeChat Pay 5xx (``SYSTEM_ERROR``: "retry with the same parameters") was answered 502
  ``WECHATPAY_REFUSED`` / ``WECHATPAY_REFUND_REFUSED``; it is 503 now (the adapter treats 5xx and 429 as
  an answer lost);
* a refund whose 5xx reply came after WeChat Pay made it was closed here and its amount given back, so
  ``refunded_fen`` said less than WeChat Pay refunded and the same money could be refunded again; it stays
  reserved and ``processing`` until WeChat Pay says how it ended;
* a subscribe message whose reply was lost was sent again by the outbox; it is given up now (WeChat has
  no idempotency key for messages).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from core.clock import utcnow
from models.accounts import Account, CardTransfer, LedgerEntry
from models.audit import AuditEvent
from models.etc import EtcBinding
from models.payments import PaymentOrder, PaymentRefund
from models.users import User
from services.accounts import funding
from services.payments import orders, refunds
from tests.account_helpers import (
    card_balance,
    ledger_is_consistent,
    new_key,
    open_account,
    top_up,
    withdraw,
)
from tests.helpers import assert_error, login_new_user, new_person, upload_id_photos
from tests.payment_helpers import (
    car_with_arrears,
    create_order,
    paid_device_fee,
    pay,
    prepay_id,
    refund,
    wait_status,
)

MARGIN_S = 2.0  # the backoff between tries (0.2 s, then 0.4 s) and the request's own work
SLOW_S = 0.2  # a slow answer, well within the client's timeout
SUBSCRIBE_TEMPLATE = "fQ0vNcA4Gsz7rjAPhOFkkD3ufghciPhUndJuliyjCQE"  # 开户成功通知
SUBSCRIBE_DATA = {"thing1": {"value": "Ⅱ类电子账户"}, "character_string2": {"value": "6230****1234"},
                  "time3": {"value": "2026-11-29 10:00"}, "thing4": {"value": "欢迎使用"}}


# -- helpers -------------------------------------------------------------------------------------------------


def bound_s(settings, *, one_shot_calls: int = 0) -> float:
    """The longest a caller may wait: one upstream call tried at most ``upstream_retries + 1`` times, plus
    ``one_shot_calls`` calls tried once, each try given up after ``http_timeout_s``."""
    return (settings.upstream_retries + 1 + one_shot_calls) * settings.http_timeout_s + MARGIN_S


def late_s(settings) -> float:
    """A delay the client does not wait out."""
    return settings.http_timeout_s + 0.5


async def timed(awaitable: Awaitable):
    started = time.monotonic()
    result = await awaitable
    return result, time.monotonic() - started


def summary(resp: httpx.Response) -> str:
    """``503 WECHATPAY_UNAVAILABLE``, ``202 pending``: what a caller was answered, for the test report."""
    body = resp.json()
    return f"{resp.status_code} {body['error']['code'] if 'error' in body else body.get('status', '')}"


async def fault(client: httpx.AsyncClient, path: str, **spec) -> int:
    """Inject a fault (docs/sandbox.md, *Faults*); returns its ``count``."""
    resp = await client.post("/sandbox/control/faults", json={"path": path, **spec})
    assert resp.status_code == 201, resp.text
    return resp.json()["count"]


async def clear_faults(client: httpx.AsyncClient) -> None:
    assert (await client.delete("/sandbox/control/faults")).status_code == 200


async def used_faults(client: httpx.AsyncClient, path: str, injected: int) -> int:
    """How many requests met the faults injected on ``path``: what was injected minus what is left."""
    left = (await client.get("/sandbox/control/faults")).json()["faults"]
    return injected - sum(f["remaining"] for f in left if f["path"] == path)


async def forget_calls(client: httpx.AsyncClient) -> None:
    assert (await client.delete("/sandbox/control/calls")).status_code == 200


async def logged_calls(client: httpx.AsyncClient, path: str) -> list[dict]:
    resp = await client.get("/sandbox/control/calls", params={"path": path})
    assert resp.status_code == 200, resp.text
    return resp.json()["calls"]


_SPEC: dict = {}


async def documented_codes(client: httpx.AsyncClient, method: str, path: str, status: int) -> set[str]:
    """The error codes the OpenAPI document lists for ``status`` of the operation."""
    if not _SPEC:
        _SPEC.update((await client.get("/docs/openapi.json")).json())
    answer = _SPEC["paths"][path][method.lower()]["responses"].get(str(status))
    assert answer is not None, f"{method} {path} documents no {status}"
    return set(answer["content"]["application/json"]["schema"]["properties"]["error"]["properties"]["code"]["enum"])


async def assert_documented_error(client, resp: httpx.Response, method: str, path: str, status: int, code: str):
    assert_error(resp, status, code)
    assert code in await documented_codes(client, method, path, status), f"{code} is not documented for {path}"


# -- WeChat ----------------------------------------------------------------------------------------------------


@dataclass
class Answer:
    """What the caller got: a status and error code, and the operation that answered (None when the call
    has no HTTP caller: the service's error, translated as our handlers translate it)."""

    status: int
    code: str | None
    route: tuple[str, str] | None = None


@dataclass(frozen=True)
class WeChatCase:
    """One WeChat API, called through what of ours calls it."""

    name: str
    path: str  # the emulator's fault and call-log key
    idempotent: bool
    calls_on_success: int  # WeChat calls the operation makes when all goes well
    prepare: Callable[..., Awaitable[dict]]  # (client, sandbox, ctx) -> state
    send: Callable[..., Awaitable[Answer]]  # (client, ctx, state) -> what the caller got


def _answer(resp: httpx.Response, path: str) -> Answer:
    return Answer(resp.status_code, resp.json()["error"]["code"] if resp.status_code >= 400 else None, ("POST", path))


async def working_token(client, sandbox) -> None:
    """Make sure the access token the server holds is one WeChat takes (a binding refreshes a refused one),
    so that the call under test meets its fault, not a 42001 first."""
    user = await login_new_user(client, sandbox)
    code = await sandbox.phone_code("13" + "".join(secrets.choice("0123456789") for _ in range(9)))
    assert (await client.post("/api/v1/me/phone", json={"code": code}, headers=user.headers)).status_code == 200


async def _prepare_login(client, sandbox, ctx) -> dict:
    return {"minted": await sandbox.login_code()}


async def _send_login(client, ctx, state) -> Answer:
    resp = await client.post("/api/v1/auth/login", json={"code": state["minted"]["code"]})
    return _answer(resp, "/api/v1/auth/login")


async def _prepare_phone(client, sandbox, ctx) -> dict:
    await working_token(client, sandbox)
    user = await login_new_user(client, sandbox)
    phone = "13" + "".join(secrets.choice("0123456789") for _ in range(9))
    return {"user": user, "code": await sandbox.phone_code(phone)}


async def _send_phone(client, ctx, state) -> Answer:
    resp = await client.post("/api/v1/me/phone", json={"code": state["code"]}, headers=state["user"].headers)
    return _answer(resp, "/api/v1/me/phone")


async def _prepare_token(client, sandbox, ctx) -> dict:
    """A phone binding that meets an access token WeChat has expired: a new token must be fetched first."""
    state = await _prepare_phone(client, sandbox, ctx)
    await ctx.wechat.access_token()  # one is held...
    await sandbox.expire_tokens()  # ...and WeChat answers it 42001
    return state


async def _prepare_ocr(client, sandbox, ctx) -> dict:
    await working_token(client, sandbox)
    user = await login_new_user(client, sandbox)
    person = new_person()
    front, back = await upload_id_photos(client, sandbox, user, person)
    return {"user": user, "body": {"front_upload_id": front, "back_upload_id": back, "name": person.name,
                                   "id_number": person.id_number}}


async def _send_ocr(client, ctx, state) -> Answer:
    resp = await client.post("/api/v1/identity/id-card", json=state["body"], headers=state["user"].headers)
    return _answer(resp, "/api/v1/identity/id-card")


async def _prepare_subscribe(client, sandbox, ctx) -> dict:
    await working_token(client, sandbox)
    user = await login_new_user(client, sandbox)
    # two acceptances: a message sent twice would be let through twice, and counted
    await sandbox.subscribe(user.openid, SUBSCRIBE_TEMPLATE, times=2)
    return {"user": user}


async def _send_subscribe(client, ctx, state) -> Answer:
    from services.wechat_errors import translate

    try:
        await ctx.wechat.send_subscribe_message(touser=state["user"].openid, template_id=SUBSCRIBE_TEMPLATE,
                                                data=SUBSCRIBE_DATA, page="pages/index/index")
    except Exception as exc:  # noqa: BLE001 - translate() refuses anything that is not a WeChat failure
        err = translate(exc)
        return Answer(err.status, err.code)
    return Answer(200, None)


async def messages_to(client, openid: str) -> list[dict]:
    return (await client.get("/sandbox/control/subscribe-messages", params={"touser": openid})).json()["messages"]


WECHAT_CASES = [
    WeChatCase("login", "sns/jscode2session", False, 1, _prepare_login, _send_login),
    WeChatCase("phone", "wxa/business/getuserphonenumber", False, 1, _prepare_phone, _send_phone),
    WeChatCase("subscribe", "cgi-bin/message/subscribe/send", False, 1, _prepare_subscribe, _send_subscribe),
    WeChatCase("ocr", "cv/ocr/idcard", True, 2, _prepare_ocr, _send_ocr),
    WeChatCase("token", "cgi-bin/stable_token", True, 1, _prepare_token, _send_phone),
]


async def _assert_503(client, answer: Answer) -> None:
    assert (answer.status, answer.code) == (503, "UPSTREAM_UNAVAILABLE"), answer
    if answer.route is not None:
        assert answer.code in await documented_codes(client, *answer.route, 503)


# the access token's retries under a hung WeChat are those of OCR (both idempotent): its 5xx case is enough
OUTAGES = [(kind, case) for kind in ("timeout", "5xx") for case in WECHAT_CASES
           if not (kind == "timeout" and case.name == "token")]


@pytest.mark.parametrize(("kind", "case"), OUTAGES, ids=[f"{k}-{c.name}" for k, c in OUTAGES])
async def test_a_wechat_outage_is_503_in_time_after_bounded_attempts(client, sandbox, ctx, settings,
                                                                     record_property, case, kind):
    """WeChat hangs past the client's timeout, or answers 5xx: a one-shot call is tried once, an idempotent
    one 1 + ``upstream_retries`` times, and the caller gets 503 UPSTREAM_UNAVAILABLE within the bound."""
    state = await case.prepare(client, sandbox, ctx)
    await forget_calls(client)
    spec = {"delay_s": late_s(settings)} if kind == "timeout" else {"http_status": 502}
    injected = await fault(client, case.path, count=settings.upstream_retries + 2, **spec)  # one more than allowed

    answer, elapsed = await timed(case.send(client, ctx, state))

    attempts = await used_faults(client, case.path, injected)
    record_property("observed", f"{answer.status} {answer.code} after {attempts} attempt(s) in {elapsed:.2f} s")
    await _assert_503(client, answer)
    assert attempts == (settings.upstream_retries + 1 if case.idempotent else 1)
    if kind == "5xx":  # answered, hence logged
        assert [c["http_status"] for c in await logged_calls(client, case.path)] == [502] * attempts
    else:  # each attempt waited for the timeout, then gave up
        assert elapsed >= attempts * settings.http_timeout_s
    assert elapsed <= bound_s(settings), f"{elapsed:.2f} s"
    if case.name == "token":  # refused for its token before it was looked at: the phone code is not spent
        await clear_faults(client)
        assert (await case.send(client, ctx, state)).status == 200


@pytest.mark.parametrize("case", WECHAT_CASES, ids=lambda c: c.name)
async def test_a_slow_wechat_answer_within_the_timeout_succeeds_without_a_retry(client, sandbox, ctx, settings,
                                                                                record_property, case):
    state = await case.prepare(client, sandbox, ctx)
    await forget_calls(client)
    injected = await fault(client, case.path, delay_s=SLOW_S, count=case.calls_on_success)

    answer, elapsed = await timed(case.send(client, ctx, state))

    record_property("observed", f"{answer.status} in {elapsed:.2f} s")
    assert answer.status == 200, answer
    assert await used_faults(client, case.path, injected) == case.calls_on_success  # each call waited...
    assert len(await logged_calls(client, case.path)) == case.calls_on_success  # ...and none was sent again
    assert case.calls_on_success * SLOW_S <= elapsed <= bound_s(settings)


@pytest.mark.parametrize("case", WECHAT_CASES, ids=lambda c: c.name)
async def test_a_wechat_reply_lost_after_the_work_causes_no_second_side_effect(client, sandbox, ctx, settings,
                                                                               record_property, case):
    """WeChat did the work and the reply never came: a one-shot call is not sent again (503, one call, the
    work done once); an idempotent one is, and succeeds."""
    state = await case.prepare(client, sandbox, ctx)
    await forget_calls(client)
    await fault(client, case.path, when="after", drop=True)

    answer, elapsed = await timed(case.send(client, ctx, state))

    calls = [c["http_status"] for c in await logged_calls(client, case.path)]
    record_property("observed", f"{answer.status} {answer.code} in {elapsed:.2f} s, calls {calls}")
    assert elapsed <= bound_s(settings)
    if case.idempotent:
        assert answer.status == 200, answer
        assert calls == [0] + [200] * case.calls_on_success  # the dropped one, sent again, then the rest
        return
    await _assert_503(client, answer)
    assert calls == [0]  # sent once, its reply dropped
    if case.name == "login":  # WeChat spent the code: a blind retry would have been WECHAT_CODE_INVALID
        assert_error(await client.post("/api/v1/auth/login", json={"code": state["minted"]["code"]}), 400,
                     "WECHAT_CODE_INVALID")
        assert not await User.filter(openid=state["minted"]["openid"]).exists()
    elif case.name == "phone":
        again = await client.post("/api/v1/me/phone", json={"code": state["code"]}, headers=state["user"].headers)
        assert_error(again, 400, "WECHAT_CODE_INVALID")
        assert (await User.get(openid=state["user"].openid)).phone_bound_at is None
    else:
        assert len(await messages_to(client, state["user"].openid)) == 1


async def test_a_subscribe_message_whose_reply_was_lost_is_not_sent_again_by_the_outbox(client, sandbox, ctx,
                                                                                         settings, user):
    from models.infra import OutboxMessage
    from services import outbox
    from services.db import atomic
    from services.notifications import outbox_handlers

    payload = {"touser": user.openid, "template_id": SUBSCRIBE_TEMPLATE, "data": SUBSCRIBE_DATA,
               "page": "pages/index/index"}
    await sandbox.subscribe(user.openid, SUBSCRIBE_TEMPLATE, times=2)  # a second send would go through
    message = await atomic(lambda conn: outbox.enqueue(conn, "subscribe_message", payload))
    await fault(client, "cgi-bin/message/subscribe/send", when="after", drop=True)
    handlers = outbox_handlers(ctx)
    for _ in range(2):  # what the worker does with this message (only this one: others are not ours to send)
        await OutboxMessage.filter(id=message.id).update(next_attempt_at=utcnow())
        assert await outbox.claim(message.id, "test", 60)
        await outbox._attempt(await OutboxMessage.get(id=message.id), handlers,
                              max_attempts=settings.outbox_max_attempts)
        if (await OutboxMessage.get(id=message.id)).status != "pending":
            break
    assert len(await messages_to(client, user.openid)) == 1


# -- WeChat Pay ------------------------------------------------------------------------------------------------

JSAPI = "wechatpay/v3/pay/transactions/jsapi"
PAY_QUERY = "wechatpay/v3/pay/transactions/out-trade-no/{out_trade_no}"
REFUNDS = "wechatpay/v3/refund/domestic/refunds"
ORDERS_PATH, REFUNDS_PATH = "/api/v1/payments/orders", "/api/v1/payments/orders/{order_id}/refunds"


def pay_fault(kind: str, settings) -> dict:
    """Hung (nothing done), a 5xx (nothing done), the work done and the reply lost, or slow."""
    return {"timeout": {"delay_s": late_s(settings)}, "5xx": {"http_status": 500},
            "lost": {"when": "after", "drop": True}, "slow": {"delay_s": SLOW_S}}[kind]


async def emulator_orders(client, out_trade_no: str) -> list[dict]:
    resp = await client.get("/sandbox/control/pay/orders", params={"out_trade_no": out_trade_no})
    assert resp.status_code == 200, resp.text
    return resp.json()["orders"]


async def emulator_refunded(ctx, order_id: int) -> int:
    """What WeChat Pay refunded (or is refunding) of the order, asked about every refund we asked for."""
    total = 0
    for row in await PaymentRefund.filter(order_id=order_id):
        found = await ctx.wechatpay.query_refund(row.out_refund_no)
        if found is not None and found["status"] in ("PROCESSING", "SUCCESS"):
            total += found["amount"]["refund"]
    return total


@pytest.mark.parametrize("kind", ["timeout", "5xx", "lost", "slow"])
async def test_a_wechatpay_order_under_faults_is_made_once(client, sandbox, ctx, settings, record_property, kind):
    """``POST /payments/orders`` (jsapi) is answered in time; the same key after the fault answers the
    order, prepaid, and WeChat Pay holds one order with the one prepay_id we hand out."""
    car, _ = await car_with_arrears(client, sandbox, ctx, 1_100)
    key = new_key()
    await forget_calls(client)
    injected = await fault(client, JSAPI, count=settings.upstream_retries + 2, **pay_fault(kind, settings))

    first, elapsed = await timed(create_order(client, car.user, car.binding["id"], key=key))

    attempts = await used_faults(client, JSAPI, injected)
    record_property("observed", f"{summary(first)} after {attempts} attempt(s) in {elapsed:.2f} s")
    assert elapsed <= bound_s(settings), f"{elapsed:.2f} s"
    assert 1 <= attempts <= settings.upstream_retries + 1
    row = await PaymentOrder.get(reference_id=car.binding["id"], purpose="arrears")
    if kind == "slow":
        assert first.status_code == 201, first.text
        assert len(await logged_calls(client, JSAPI)) == 1
    else:
        await assert_documented_error(client, first, "POST", ORDERS_PATH, 503, "WECHATPAY_UNAVAILABLE")
        assert row.status == "created" and row.prepay_id is None
        await clear_faults(client)
        first = await create_order(client, car.user, car.binding["id"], key=key)
        assert first.status_code in (200, 201), first.text
    order = first.json()
    assert order["id"] == row.id and order["status"] == "prepaid"
    assert await PaymentOrder.filter(reference_id=car.binding["id"], purpose="arrears").count() == 1
    assert [o["prepay_id"] for o in await emulator_orders(client, order["out_trade_no"])] == [prepay_id(order)]
    # and it is a working order: paid once, the arrears settled
    await pay(client, order)
    assert (await wait_status(order["id"], "paid")).status == "paid"
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 0


@pytest.mark.parametrize("kind", ["timeout", "5xx", "slow"])
async def test_an_order_query_under_faults_answers_what_we_know_then_applies_the_payment_once(
        client, sandbox, ctx, settings, record_property, kind):
    """``GET /payments/orders/{id}`` asks WeChat Pay about an open order; when WeChat Pay does not answer it
    says what we know (200 ``prepaid``: the operation documents no 503) in time, and the payment is
    applied once when WeChat Pay answers again."""
    car, _ = await car_with_arrears(client, sandbox, ctx, 1_300)
    order = (await create_order(client, car.user, car.binding["id"])).json()
    await pay(client, order, notify="drop")  # paid at WeChat Pay; the notification never comes
    injected = await fault(client, PAY_QUERY, count=settings.upstream_retries + 2, **pay_fault(kind, settings))

    shown, elapsed = await timed(client.get(f"/api/v1/payments/orders/{order['id']}", headers=car.user.headers))

    attempts = await used_faults(client, PAY_QUERY, injected)
    record_property("observed", f"{summary(shown)} after {attempts} attempt(s) in {elapsed:.2f} s")
    assert shown.status_code == 200, shown.text
    assert elapsed <= bound_s(settings), f"{elapsed:.2f} s"
    assert 1 <= attempts <= settings.upstream_retries + 1
    assert shown.json()["status"] == ("paid" if kind == "slow" else "prepaid")
    await clear_faults(client)
    for _ in range(2):  # asked about again, and again: applied once
        again = await client.get(f"/api/v1/payments/orders/{order['id']}", headers=car.user.headers)
        assert again.json()["status"] == "paid", again.text
    assert (await EtcBinding.get(id=car.binding["id"])).arrears_fen == 0
    assert await AuditEvent.filter(entity_type="payment_order", entity_id=str(order["id"]),
                                   action="payment_order.paid").count() == 1


@pytest.mark.parametrize("kind", ["timeout", "5xx", "lost", "slow"])
async def test_a_refund_under_faults_is_refunded_once(client, sandbox, ctx, settings, record_property, kind):
    """A refund whose request hung or whose reply was lost is 503 in time and stays reserved; the same key
    afterwards answers that refund; WeChat Pay and ``refunded_fen`` agree; nothing beyond the fee goes."""
    car, order = await paid_device_fee(client, sandbox, ctx)
    key = new_key()
    await forget_calls(client)
    injected = await fault(client, REFUNDS, count=settings.upstream_retries + 2, **pay_fault(kind, settings))

    first, elapsed = await timed(refund(client, car.user, order["id"], key=key, amount_fen=3_000))

    attempts = await used_faults(client, REFUNDS, injected)
    record_property("observed", f"{summary(first)} after {attempts} attempt(s) in {elapsed:.2f} s")
    assert elapsed <= bound_s(settings), f"{elapsed:.2f} s"
    assert 1 <= attempts <= settings.upstream_retries + 1
    if kind == "slow":
        assert first.status_code == 201, first.text
    else:
        await assert_documented_error(client, first, "POST", REFUNDS_PATH, 503, "WECHATPAY_UNAVAILABLE")
        (row,) = await PaymentRefund.filter(order_id=order["id"])
        assert row.status == "processing"  # reserved, not given back: WeChat Pay may have made it
        assert (await PaymentOrder.get(id=order["id"])).refunded_fen == 3_000
    await clear_faults(client)
    again = await refund(client, car.user, order["id"], key=key, amount_fen=3_000)
    assert again.status_code == 201, again.text
    assert await PaymentRefund.filter(order_id=order["id"]).count() == 1  # the same refund, asked for again
    refunded = (await PaymentOrder.get(id=order["id"])).refunded_fen
    assert await emulator_refunded(ctx, order["id"]) == refunded == 3_000
    # what is left, and not a fen more
    rest = await refund(client, car.user, order["id"])
    assert rest.status_code == 201 and rest.json()["amount_fen"] == orders.OBU_FEE_FEN - refunded, rest.text
    assert_error(await refund(client, car.user, order["id"], amount_fen=1), 422, "REFUND_EXCEEDS_PAID")
    assert await emulator_refunded(ctx, order["id"]) == orders.OBU_FEE_FEN
    assert (await PaymentOrder.get(id=order["id"])).refunded_fen == orders.OBU_FEE_FEN


@pytest.mark.parametrize("call", ["jsapi", "refund"])
async def test_a_wechatpay_5xx_is_answered_503(client, sandbox, ctx, call):
    if call == "jsapi":
        car, _ = await car_with_arrears(client, sandbox, ctx, 1_200)
        await fault(client, JSAPI, http_status=500)
        resp = await create_order(client, car.user, car.binding["id"])
        await assert_documented_error(client, resp, "POST", ORDERS_PATH, 503, "WECHATPAY_UNAVAILABLE")
    else:
        car, order = await paid_device_fee(client, sandbox, ctx)
        await fault(client, REFUNDS, http_status=500)
        resp = await refund(client, car.user, order["id"], amount_fen=1_000)
        await assert_documented_error(client, resp, "POST", REFUNDS_PATH, 503, "WECHATPAY_UNAVAILABLE")


async def test_a_refund_made_before_its_5xx_reply_is_not_refunded_twice(client, sandbox, ctx):
    car, order = await paid_device_fee(client, sandbox, ctx)
    key = new_key()
    await fault(client, REFUNDS, when="after", http_status=500)  # WeChat Pay refunds, then answers 500
    assert (await refund(client, car.user, order["id"], key=key, amount_fen=3_000)).status_code >= 500
    await clear_faults(client)
    await refund(client, car.user, order["id"], key=key, amount_fen=3_000)  # the client's retry, same key
    await refunds.reconcile(ctx)
    # WeChat Pay refunded 3,000: the order must say so, or the same 3,000 can be asked for (and paid) again
    assert await emulator_refunded(ctx, order["id"]) == 3_000
    assert (await PaymentOrder.get(id=order["id"])).refunded_fen == 3_000


# -- The card network ------------------------------------------------------------------------------------------

TRANSFER, TRANSFER_QUERY = "cardnet/v1/transfers", "cardnet/v1/transfers/{request_id}"
TOP_UPS_PATH, WITHDRAWALS_PATH = "/api/v1/accounts/{account_id}/top-ups", "/api/v1/accounts/{account_id}/withdrawals"
CARD_START_FEN, FUNDED_FEN, AMOUNT_FEN = 100_000, 50_000, 20_000
LATE = "late"  # stands for late_s(settings)


@dataclass(frozen=True)
class CardFault:
    transfer: dict | None  # the fault on the transfer (None: the network cannot be reached at all)
    query: dict | None  # and on the query about it
    moved: bool  # whether the network moved the money on the first request
    first: int  # what the first request is answered
    settle: str  # "" (settled at once), "retry" (the same key), "job" (the reconciliation job), "not received"
    #              (the network never got it: the job closes it after UNKNOWN_AFTER_S; a new key sends it anew)


CARD_FAULTS = {
    "timeout": CardFault({"delay_s": LATE}, None, False, 202, "not received"),
    "5xx": CardFault({"http_status": 503}, None, False, 202, "not received"),
    "unreachable": CardFault(None, None, False, 503, "retry"),
    "late": CardFault({"when": "after", "delay_s": LATE}, None, True, 201, ""),
    "5xx-after": CardFault({"when": "after", "http_status": 500}, None, True, 201, ""),
    "lost": CardFault({"when": "after", "drop": True}, None, True, 201, ""),
    "slow": CardFault({"delay_s": SLOW_S}, None, True, 201, ""),
    "lost-query-down": CardFault({"when": "after", "drop": True}, {"http_status": 503}, True, 202, "retry"),
    "late-query-hung": CardFault({"when": "after", "delay_s": LATE}, {"delay_s": LATE}, True, 202, "job"),
}
CARD_CASES = [("top-up", name) for name in CARD_FAULTS] + [
    ("withdrawal", name) for name in ("timeout", "unreachable", "5xx-after", "lost", "lost-query-down")]


def _concrete(spec: dict, settings) -> dict:
    return {k: late_s(settings) if v == LATE else v for k, v in spec.items()}


async def network_transfers(client, card_number: str) -> list[dict]:
    """What the card network did with this card (as tests/api/test_funding.py reads it)."""
    resp = await client.get("/sandbox/control/transfers", params={"card_number": card_number})
    assert resp.status_code == 200, resp.text
    return resp.json()["transfers"]


async def moved_on_card(client, card_number: str, wire: str) -> list[int]:
    return [t["amount_fen"] for t in await network_transfers(client, card_number)
            if t["direction"] == wire and t["status"] == "SUCCEEDED"]


@pytest.mark.parametrize(("direction", "name"), CARD_CASES, ids=[f"{d}-{n}" for d, n in CARD_CASES])
async def test_a_card_transfer_under_faults_moves_the_money_exactly_once(client, sandbox, ctx, settings, monkeypatch,
                                                                         record_property, direction, name):
    """A transfer is sent once; a lost answer is asked about (at most 1 + ``upstream_retries`` times); the
    caller gets 201, 202 (outcome not known yet) or 503 (the network could not be reached) in time. Once
    settled (the same key, or the reconciliation job) the card moved exactly once, the account holds what
    the answers say, and ``ledger check`` holds."""
    spec = CARD_FAULTS[name]
    user, person, account = await open_account(client, sandbox, card_balance_fen=CARD_START_FEN)
    send, wire = (top_up, "debit") if direction == "top-up" else (withdraw, "credit")
    if direction == "withdrawal":
        assert (await top_up(client, user, account["id"], FUNDED_FEN)).status_code == 201
    key = new_key()
    await forget_calls(client)
    transfer_faults = query_faults = 0
    if spec.transfer is None:
        monkeypatch.setattr(ctx.cardnet, "base_url", "http://127.0.0.1:9")  # nothing listens there
    else:  # two: the transfer must use only one
        transfer_faults = await fault(client, TRANSFER, count=2, **_concrete(spec.transfer, settings))
    if spec.query is not None:  # one more than the query may use
        query_faults = await fault(client, TRANSFER_QUERY, count=settings.upstream_retries + 2,
                                   **_concrete(spec.query, settings))

    sent_at = time.monotonic()
    first, elapsed = await timed(send(client, user, account["id"], AMOUNT_FEN, key=key))

    sent = (await used_faults(client, TRANSFER, transfer_faults) if transfer_faults
            else len(await logged_calls(client, TRANSFER)))
    queries = (await used_faults(client, TRANSFER_QUERY, query_faults) if query_faults
               else len(await logged_calls(client, TRANSFER_QUERY)))
    record_property("observed", f"{summary(first)} in {elapsed:.2f} s, {sent} transfer(s), {queries} query(ies)")
    assert elapsed <= bound_s(settings, one_shot_calls=1), f"{elapsed:.2f} s"  # the transfer, then the query
    timeouts = ((spec.transfer or {}).get("delay_s") == LATE) + ((spec.query or {}).get("delay_s") == LATE) * (
        settings.upstream_retries + 1)
    assert elapsed >= timeouts * settings.http_timeout_s  # each hung call was waited for, then given up
    if spec.first == 503:
        await assert_documented_error(client, first, "POST", TOP_UPS_PATH if direction == "top-up"
                                      else WITHDRAWALS_PATH, 503, "CARD_NETWORK_UNAVAILABLE")
        monkeypatch.undo()
    else:
        assert first.status_code == spec.first, first.text
        assert first.json()["status"] == ("succeeded" if spec.first == 201 else "pending")
    assert sent == (1 if transfer_faults else 0)  # sent once (never, when the network cannot be reached)
    if query_faults:
        assert queries == settings.upstream_retries + 1
    else:
        assert queries <= 1  # asked once if the answer was lost
    assert len(await moved_on_card(client, person.card_number, wire)) == spec.moved
    await clear_faults(client)

    if spec.settle == "retry":
        again = await send(client, user, account["id"], AMOUNT_FEN, key=key)
        assert again.status_code == 201 and again.json()["status"] == "succeeded", again.text
    elif spec.settle == "job":
        assert (await funding.reconcile(ctx, older_than_s=0))["succeeded"] >= 1
        replay = await send(client, user, account["id"], AMOUNT_FEN, key=key)  # the key learns the outcome
        assert replay.status_code == 201 and replay.json()["status"] == "succeeded", replay.text
    elif spec.settle == "not received":
        # the network has never heard of it: the retry sends it again, under the same request id (issue 20:
        # a transfer committed but never received is completed by its own retry, not only by reconciliation)
        again = await send(client, user, account["id"], AMOUNT_FEN, key=key)
        assert again.status_code == 201 and again.json()["status"] == "succeeded", again.text
        replay = await send(client, user, account["id"], AMOUNT_FEN, key=key)
        assert replay.status_code == 201 and replay.json() == again.json(), replay.text
        if "delay_s" in spec.transfer:  # past the time the held request would have moved the money, had it
            await asyncio.sleep(max(0.0, late_s(settings) + 0.2 - (time.monotonic() - sent_at)))  # gone on

    assert await moved_on_card(client, person.card_number, wire) == [AMOUNT_FEN]  # exactly once
    after = await Account.get(id=account["id"])
    if direction == "top-up":
        assert await card_balance(client, person.card_number) == CARD_START_FEN - AMOUNT_FEN
        assert after.balance_fen == AMOUNT_FEN
        assert await LedgerEntry.filter(account_id=account["id"], kind="top_up").count() == 1
    else:
        assert await card_balance(client, person.card_number) == CARD_START_FEN - FUNDED_FEN + AMOUNT_FEN
        assert after.balance_fen == FUNDED_FEN - AMOUNT_FEN
        withdrawn = await LedgerEntry.filter(account_id=account["id"], kind="withdrawal").count()
        reversed_ = await LedgerEntry.filter(account_id=account["id"], kind="withdrawal_reversal").count()
        assert withdrawn - reversed_ == 1
    assert after.pending_in_fen == 0
    assert not await CardTransfer.filter(account_id=account["id"], status="pending").exists()
    assert await ledger_is_consistent() == []
