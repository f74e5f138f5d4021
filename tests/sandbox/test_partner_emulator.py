"""The partner callback emulator (/sandbox/partner/{app_id}/notify) against a real sandbox server.

Signatures are built here from docs/open-api.md with hashlib/hmac directly, canonical queries
written out by hand: nothing is shared with sandbox.partner (nor with the bank's server)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time

import httpx
import pytest

APP = "pt0123456789abcdef"
SECRET = "sk_partner-emulator-test-secret-000000000000000"
OLD_SECRET = "sk_partner-emulator-old-secret-0000000000000000"
OTHER_APP = "pt00000000000000ff"
OTHER_SECRET = "sk_other-partner-secret"


def sign(secret: str, method: str, path: str, canonical_query: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = "\n".join((method, path, canonical_query, timestamp, nonce, hashlib.sha256(body).hexdigest()))
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def event(event_id: str | None = None, **overrides) -> dict:
    return {
        "event_id": event_id or f"ev_{secrets.token_hex(8)}",
        "type": "binding.activated",
        "occurred_at": "2026-11-30T08:00:00+08:00",
        "data": {"binding_id": "b_1", "card_number_masked": "6222********3446", "plate_number": "粤A12345",
                 "plate_color": "blue", "status": "active"},
        **overrides,
    }


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


class Partner:
    """Sends notifications to the emulated callback URL of one app, as the bank would."""

    def __init__(self, sb, app_id: str = APP, secret: str = SECRET):
        self.sb, self.app_id, self.secret = sb, app_id, secret

    @property
    def path(self) -> str:
        return f"/sandbox/partner/{self.app_id}/notify"

    def send(
        self,
        body: dict | bytes,
        *,
        query: str = "",
        canonical_query: str = "",
        secret: str | None = None,
        app_id_header: str | None = None,
        timestamp: int | None = None,
        nonce: str | None = None,
        signed_body: bytes | None = None,
        signed_path: str | None = None,
        signature: str | None = None,
        drop_headers: tuple[str, ...] = (),
        timeout: float = 30,
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or new_nonce()
        sig = signature or sign(
            secret or self.secret, "POST", signed_path or self.path, canonical_query, ts, nonce,
            raw if signed_body is None else signed_body,
        )
        headers = {
            "Content-Type": "application/json",
            "X-App-Id": app_id_header or self.app_id,
            "X-Timestamp": ts,
            "X-Nonce": nonce,
            "X-Signature": sig,
        }
        for name in drop_headers:
            headers.pop(name)
        url = self.sb.sb.base + self.path + (f"?{query}" if query else "")
        return self.sb.http.post(url, content=raw, headers=headers, timeout=timeout)

    def notifications(self) -> list[dict]:
        r = self.sb.control("GET", f"partners/{self.app_id}/notifications")
        assert r.status_code == 200, r.text
        return r.json()["notifications"]

    def deliveries(self) -> list[dict]:
        r = self.sb.control("GET", f"partners/{self.app_id}/deliveries")
        assert r.status_code == 200, r.text
        return r.json()["deliveries"]

    def last_delivery(self) -> dict:
        return self.deliveries()[-1]


def register(sb, app_id: str, secret: str, previous: str | None = None) -> dict:
    body = {"app_id": app_id, "secret": secret}
    if previous is not None:
        body["previous_secret"] = previous
    r = sb.control("POST", "partners", json=body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def partner(sb) -> Partner:
    assert register(sb, APP, SECRET) == {
        "app_id": APP, "previous_secret": False, "callback_path": f"/sandbox/partner/{APP}/notify",
    }
    r = sb.control("DELETE", f"partners/{APP}/notifications")
    assert r.status_code == 200, r.text
    assert sb.control("DELETE", "faults").status_code == 200
    yield Partner(sb)
    sb.control("DELETE", "faults")


def assert_rejected(r: httpx.Response, partner: Partner, status: int, reason: str) -> dict:
    assert r.status_code == status, r.text
    assert r.json()["error"] == reason, r.text
    last = partner.last_delivery()
    assert (last["outcome"], last["reason"], last["http_status"]) == ("rejected", reason, status), last
    assert last["detail"]
    return last


# -- accepted, listed, deduplicated ------------------------------------------------------------------


def test_signed_notification_is_accepted_and_listed(partner):
    ev = event()
    r = partner.send(ev)
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True, "event_id": ev["event_id"], "duplicate": False}
    [stored] = partner.notifications()
    assert {k: stored[k] for k in ("event_id", "type", "occurred_at", "data")} == ev
    assert stored["deliveries"] == 1 and abs(stored["received_at"] - time.time()) < 60
    [delivery] = partner.deliveries()
    assert delivery["event_id"] == ev["event_id"]
    assert (delivery["outcome"], delivery["reason"], delivery["http_status"], delivery["secret_used"]) == (
        "accepted", None, 200, "secret")


def test_redelivery_is_stored_once(partner):
    ev = event()
    assert partner.send(ev).json()["duplicate"] is False
    r = partner.send(ev)  # the bank's retry: same event_id, new nonce and timestamp
    assert r.status_code == 200 and r.json()["duplicate"] is True
    [stored] = partner.notifications()
    assert stored["event_id"] == ev["event_id"] and stored["deliveries"] == 2
    assert [(d["event_id"], d["outcome"], d["http_status"]) for d in partner.deliveries()] == [
        (ev["event_id"], "accepted", 200), (ev["event_id"], "duplicate", 200)]
    # a redelivery that changed the event is still a duplicate (the first one is kept), but it is noted
    r = partner.send({**ev, "data": {"binding_id": "b_2"}})
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert "data" in partner.last_delivery()["detail"]
    [stored] = partner.notifications()
    assert stored["data"] == ev["data"] and stored["deliveries"] == 3


def test_concurrent_redeliveries_store_the_event_once(partner):
    from concurrent.futures import ThreadPoolExecutor

    ev = event()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: partner.send(ev), range(8)))
    assert all(r.status_code == 200 for r in answers)
    assert sorted(r.json()["duplicate"] for r in answers) == [False] + [True] * 7
    [stored] = partner.notifications()
    assert stored["deliveries"] == 8
    assert sorted(d["outcome"] for d in partner.deliveries()) == ["accepted"] + ["duplicate"] * 7


def test_events_are_per_partner(sb, partner):
    register(sb, OTHER_APP, OTHER_SECRET)
    sb.control("DELETE", f"partners/{OTHER_APP}/notifications")
    other = Partner(sb, OTHER_APP, OTHER_SECRET)
    ev = event()
    assert partner.send(ev).json()["duplicate"] is False
    assert other.send(ev).json()["duplicate"] is False
    assert [n["event_id"] for n in other.notifications()] == [ev["event_id"]]
    # one partner's secret does not open another's callback
    assert_rejected(partner.send(event(), secret=OTHER_SECRET), partner, 401, "SIGNATURE_INVALID")


# -- rejections ---------------------------------------------------------------------------------------


def test_wrong_signature_is_rejected(partner):
    ev = event()
    last = assert_rejected(partner.send(ev, secret="sk_not-the-secret"), partner, 401, "SIGNATURE_INVALID")
    assert last["event_id"] == ev["event_id"] and last["secret_used"] is None
    assert_rejected(partner.send(ev, signature="0" * 64), partner, 401, "SIGNATURE_INVALID")
    # uppercase hex is not what the doc says
    r = partner.send(ev, signature=sign(SECRET, "POST", partner.path, "", str(int(time.time())), "n" * 16,
                                        b"").upper())
    assert_rejected(r, partner, 401, "AUTH_HEADER_INVALID")
    assert partner.notifications() == []


def test_signature_mismatch_shows_the_string_signed(partner):
    ts, nonce = str(int(time.time())), new_nonce()
    body = json.dumps(event()).encode()
    r = partner.send(body, secret="sk_wrong", timestamp=int(ts), nonce=nonce)
    assert r.status_code == 401
    expected = "\n".join(("POST", partner.path, "", ts, nonce, hashlib.sha256(body).hexdigest()))
    assert r.json()["string_to_sign"] == expected
    assert repr(expected) in partner.last_delivery()["detail"]


def test_wrong_app_id_header_is_rejected(sb, partner):
    register(sb, OTHER_APP, OTHER_SECRET)
    # signed correctly with this partner's secret, but claiming to be another app
    assert_rejected(partner.send(event(), app_id_header=OTHER_APP), partner, 401, "APP_ID_MISMATCH")
    assert partner.notifications() == []


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_stale_or_future_timestamp_is_rejected(partner, skew):
    r = partner.send(event(), timestamp=int(time.time()) - skew)
    assert_rejected(r, partner, 401, "TIMESTAMP_OUT_OF_RANGE")
    assert partner.notifications() == []


def test_timestamp_within_tolerance_is_accepted(partner):
    for skew in (-290, 290):
        assert partner.send(event(), timestamp=int(time.time()) - skew).status_code == 200
    assert len(partner.notifications()) == 2


def test_tampered_body_is_rejected(partner):
    ev = event(data={"binding_id": "b_1", "amount_fen": 100, "out_trade_nos": ["t1"]}, type="arrears.settled")
    signed = json.dumps(ev).encode()
    tampered = json.dumps({**ev, "data": {**ev["data"], "amount_fen": 1}}).encode()
    assert_rejected(partner.send(tampered, signed_body=signed), partner, 401, "SIGNATURE_INVALID")
    # the same bytes re-serialised differently are different bytes: the signature covers the bytes sent
    reformatted = json.dumps(ev, indent=1).encode()
    assert_rejected(partner.send(reformatted, signed_body=signed), partner, 401, "SIGNATURE_INVALID")
    assert partner.notifications() == []


def test_reused_nonce_is_rejected(partner):
    nonce = new_nonce()
    first = event()
    assert partner.send(first, nonce=nonce).status_code == 200
    r = partner.send(event(), nonce=nonce)  # a replay with another event, correctly signed
    assert_rejected(r, partner, 409, "NONCE_REUSED")
    assert partner.last_delivery()["secret_used"] == "secret"
    r = partner.send(first, nonce=nonce)  # or of the very same delivery
    assert_rejected(r, partner, 409, "NONCE_REUSED")
    [stored] = partner.notifications()
    assert stored["deliveries"] == 1


def test_badly_signed_delivery_does_not_spend_its_nonce(partner):
    nonce = new_nonce()
    assert_rejected(partner.send(event(), nonce=nonce, secret="sk_wrong"), partner, 401, "SIGNATURE_INVALID")
    assert partner.send(event(), nonce=nonce).status_code == 200


@pytest.mark.parametrize("header", ["X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature"])
def test_missing_header_is_rejected(partner, header):
    r = partner.send(event(), drop_headers=(header,))
    assert_rejected(r, partner, 401, "AUTH_HEADER_INVALID")
    assert r.json()["field"] == header


@pytest.mark.parametrize("nonce,timestamp", [("short", None), ("n" * 65, None), ("bad nonce with spaces", None),
                                             (None, "12.5"), (None, "-5"), (None, "soon")])
def test_malformed_header_is_rejected(partner, nonce, timestamp):
    ts = timestamp or str(int(time.time()))
    nonce = nonce or new_nonce()
    body = json.dumps(event()).encode()
    headers = {"X-App-Id": APP, "X-Timestamp": ts, "X-Nonce": nonce,
               "X-Signature": sign(SECRET, "POST", partner.path, "", ts, nonce, body)}
    r = partner.sb.http.post(partner.sb.sb.base + partner.path, content=body, headers=headers)
    assert_rejected(r, partner, 401, "AUTH_HEADER_INVALID")


@pytest.mark.parametrize(
    "body,field",
    [
        (b"not json", None),
        (b"[1]", None),
        (json.dumps({k: v for k, v in event().items() if k != "event_id"}).encode(), "event_id"),
        (json.dumps(event(type="")).encode(), "type"),
        (json.dumps(event(occurred_at="2026-11-30 08:00")).encode(), "occurred_at"),
        (json.dumps(event(occurred_at="2026-11-30T08:00:00")).encode(), "occurred_at"),  # no offset
        (json.dumps(event(data=[1])).encode(), "data"),
    ],
)
def test_malformed_body_is_refused(partner, body, field):
    r = partner.send(body)
    assert_rejected(r, partner, 400, "INVALID_BODY")
    assert r.json().get("field") == field
    assert partner.notifications() == []


def test_unknown_partner_is_404(sb, partner):
    r = Partner(sb, "pt_never_registered", "x").send(event())
    assert r.status_code == 404 and r.json()["error"] == "UNKNOWN_PARTNER"
    for what in ("notifications", "deliveries"):
        r = sb.control("GET", f"partners/pt_never_registered/{what}")
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    assert sb.control("DELETE", "partners/pt_never_registered/notifications").status_code == 404


# -- secret rotation ------------------------------------------------------------------------------------


def test_previous_secret_is_accepted_during_rotation(sb, partner):
    assert register(sb, APP, SECRET, previous=OLD_SECRET)["previous_secret"] is True
    assert partner.send(event(), secret=OLD_SECRET).status_code == 200
    assert partner.last_delivery()["secret_used"] == "previous_secret"
    assert partner.send(event(), secret=SECRET).status_code == 200
    assert partner.last_delivery()["secret_used"] == "secret"
    assert_rejected(partner.send(event(), secret="sk_third"), partner, 401, "SIGNATURE_INVALID")
    # the grace period ends: registering without previous_secret drops it; the records stay
    assert register(sb, APP, SECRET)["previous_secret"] is False
    assert_rejected(partner.send(event(), secret=OLD_SECRET), partner, 401, "SIGNATURE_INVALID")
    assert len(partner.notifications()) == 2


# -- the query string of the callback URL -------------------------------------------------------------


def test_query_string_is_signed(partner):
    # hand-written canonical form: sorted by name then value, decoded ('+' is a space), re-encoded
    # escaping all but A-Z a-z 0-9 - _ . ~
    query = "tenant=t%2F1&b=2&b=1&note=a+b~c&z"
    canonical = "b=1&b=2&note=a%20b~c&tenant=t%2F1&z="
    assert partner.send(event(), query=query, canonical_query=canonical).status_code == 200
    assert partner.last_delivery()["outcome"] == "accepted"
    # signed without the query: rejected
    r = partner.send(event(), query=query, canonical_query="")
    assert_rejected(r, partner, 401, "SIGNATURE_INVALID")
    assert r.json()["string_to_sign"].split("\n")[2] == canonical
    # signed with the raw, unsorted query: rejected
    assert_rejected(partner.send(event(), query=query, canonical_query=query), partner, 401, "SIGNATURE_INVALID")
    # a query signed but not sent: rejected
    assert_rejected(partner.send(event(), canonical_query="b=1"), partner, 401, "SIGNATURE_INVALID")


def test_query_with_utf8(partner):
    query = "city=%E5%B9%BF%E5%B7%9E&lot=A%201"
    canonical = "city=%E5%B9%BF%E5%B7%9E&lot=A%201"
    assert partner.send(event(), query=query, canonical_query=canonical).status_code == 200
    # the lowercase percent-encoding a sloppy signer might produce is not canonical
    r = partner.send(event(), query=query, canonical_query=canonical.lower())
    assert_rejected(r, partner, 401, "SIGNATURE_INVALID")


def test_path_is_signed(partner):
    r = partner.send(event(), signed_path="/sandbox/partner/other/notify")
    assert_rejected(r, partner, 401, "SIGNATURE_INVALID")


# -- faults ----------------------------------------------------------------------------------------


def add_fault(sb, **fault) -> dict:
    r = sb.control("POST", "faults", json=fault)
    assert r.status_code == 201, r.text
    return r.json()


def test_fault_answers_503_then_normal(sb, partner):
    add_fault(sb, path=f"partner/{APP}/notify", http_status=503)
    ev = event()
    r = partner.send(ev)
    assert r.status_code == 503
    assert partner.notifications() == []
    last = partner.last_delivery()
    assert (last["outcome"], last["reason"], last["http_status"], last["event_id"]) == (
        "fault", "INJECTED_FAULT", 503, ev["event_id"])
    r = partner.send(ev)  # the bank's retry
    assert r.status_code == 200 and r.json()["duplicate"] is False
    [stored] = partner.notifications()
    assert stored["deliveries"] == 1
    assert [d["outcome"] for d in partner.deliveries()] == ["fault", "accepted"]
    assert [c["http_status"] for c in sb.calls(f"partner/{APP}/notify")[-2:]] == [503, 200]


def test_fault_before_does_not_spend_the_nonce(sb, partner):
    add_fault(sb, path=f"/sandbox/partner/{APP}/notify", http_status=500, count=2)
    nonce = new_nonce()
    assert partner.send(event(), nonce=nonce).status_code == 500
    assert partner.send(event(), nonce=nonce).status_code == 500
    assert partner.send(event(), nonce=nonce).status_code == 200


def test_fault_of_one_partner_spares_the_others(sb, partner):
    register(sb, OTHER_APP, OTHER_SECRET)
    other = Partner(sb, OTHER_APP, OTHER_SECRET)
    add_fault(sb, path=f"partner/{APP}/notify", http_status=503)
    assert other.send(event()).status_code == 200
    assert partner.send(event()).status_code == 503
    # the literal key applies to every partner
    add_fault(sb, path="partner/{app_id}/notify", http_status=502, count=2)
    assert other.send(event()).status_code == 502
    assert partner.send(event()).status_code == 502
    assert partner.send(event()).status_code == 200


def test_fault_after_stores_the_event_and_spoils_the_reply(sb, partner):
    add_fault(sb, path=f"partner/{APP}/notify", http_status=503, when="after")
    ev = event()
    assert partner.send(ev).status_code == 503
    [stored] = partner.notifications()  # the partner did process it
    assert stored["deliveries"] == 1
    last = partner.last_delivery()
    assert (last["outcome"], last["reason"], last["http_status"]) == ("fault", "INJECTED_FAULT", 503)
    assert last["detail"].startswith("accepted")
    r = partner.send(ev)  # the retry is a duplicate
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert partner.notifications()[0]["deliveries"] == 2


def test_hang_provokes_the_senders_timeout(sb, partner):
    add_fault(sb, path=f"partner/{APP}/notify", delay_s=3)
    ev = event()
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        partner.send(ev, timeout=0.5)
    assert time.monotonic() - t0 < 2
    # the emulator notices the sender hung up; the event was never looked at
    deadline = time.monotonic() + 10
    while not partner.deliveries() and time.monotonic() < deadline:
        time.sleep(0.1)
    last = partner.last_delivery()
    assert (last["outcome"], last["reason"], last["http_status"], last["event_id"]) == (
        "fault", "INJECTED_FAULT", 0, ev["event_id"])
    assert partner.notifications() == []
    assert partner.send(ev).status_code == 200  # the retry, on time


def test_delay_only_fault_answers_late(sb, partner):
    add_fault(sb, path=f"partner/{APP}/notify", delay_s=1)
    t0 = time.monotonic()
    assert partner.send(event()).status_code == 200
    assert time.monotonic() - t0 >= 0.95
    assert partner.last_delivery()["outcome"] == "accepted"


def test_drop_fault(sb, partner):
    add_fault(sb, path=f"partner/{APP}/notify", drop=True)
    with pytest.raises(httpx.TransportError):
        partner.send(event())
    last = partner.last_delivery()
    assert (last["outcome"], last["http_status"]) == ("fault", 0)


def test_partner_fault_validation(sb, partner):
    for bad in ({"path": f"partner/{APP}/notify", "errcode": 40001},
                {"path": "partner/bad id/notify", "http_status": 503},
                {"path": "partner/notify", "http_status": 503}):
        r = sb.control("POST", "faults", json=bad)
        assert r.status_code == 400 and r.json()["field"] in ("path", "errcode"), (bad, r.text)


# -- the control API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,field",
    [
        ({"secret": SECRET}, "app_id"),
        ({"app_id": "bad id", "secret": SECRET}, "app_id"),
        ({"app_id": APP}, "secret"),
        ({"app_id": APP, "secret": ""}, "secret"),
        ({"app_id": APP, "secret": SECRET, "previous_secret": 5}, "previous_secret"),
        ({"app_id": APP, "secret": SECRET, "callback_url": "x"}, "callback_url"),
    ],
)
def test_register_validation(sb, body, field):
    r = sb.control("POST", "partners", json=body)
    assert r.status_code == 400 and r.json()["field"] == field, r.text


def test_reset_forgets_records_but_keeps_secrets(sb, partner):
    nonce = new_nonce()
    assert partner.send(event(), nonce=nonce).status_code == 200
    partner.send(event(), secret="sk_wrong")
    r = sb.control("DELETE", f"partners/{APP}/notifications")
    assert r.status_code == 200 and r.json() == {"notifications": 1, "deliveries": 2}
    assert partner.notifications() == [] and partner.deliveries() == []
    assert partner.send(event(), nonce=nonce).status_code == 200  # nonces forgotten too; secret kept


def test_control_answers_fit_the_documented_schemas(sb, partner):
    from tests.sandbox.test_control_openapi import DOC, schema_validator

    partner.send(event())
    partner.send(event(), secret="sk_wrong")
    for what, schema in (("notifications", "PartnerNotifications"), ("deliveries", "PartnerDeliveries")):
        r = sb.control("GET", f"partners/{APP}/{what}")
        schema_validator(DOC["components"]["schemas"][schema]).validate(r.json())
    r = sb.control("DELETE", f"partners/{APP}/notifications")
    schema_validator(DOC["components"]["schemas"]["PartnerReset"]).validate(r.json())
    r = sb.control("GET", "partners/nope/deliveries")
    schema_validator(DOC["components"]["schemas"]["Error"]).validate(r.json())
    # the schema and the server agree on refusals
    schema = schema_validator(DOC["components"]["schemas"]["PartnerRequest"])
    for body in ({"app_id": "bad id", "secret": "s"}, {"app_id": APP, "secret": ""}, {"app_id": APP}):
        assert not schema.is_valid(body)
        assert sb.control("POST", "partners", json=body).status_code == 400
