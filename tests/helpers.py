"""Test helpers over the sandbox control API and our own API (plain async functions, no magic)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import httpx


class Sandbox:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _post(self, path: str, body: dict | None = None) -> httpx.Response:
        resp = await self.client.post(f"/sandbox/control/{path}", json=body or {})
        assert resp.status_code < 300, resp.text
        return resp

    async def login_code(self, openid: str | None = None, **kw) -> dict:
        body = {k: v for k, v in {"openid": openid, **kw}.items() if v is not None}
        return (await self._post("login-code", body)).json()

    async def phone_code(self, phone: str, **kw) -> str:
        return (await self._post("phone-code", {"phone": phone, **kw})).json()["code"]

    async def fault(self, path: str, **kw) -> None:
        await self._post("faults", {"path": path, **kw})

    async def subscribe(self, openid: str, *template_ids: str, times: int = 1) -> list[dict]:
        """The user accepts these templates in wx.requestSubscribeMessage, ``times`` times: each acceptance
        lets one message through (the emulator answers 43101 to a message nobody accepted)."""
        for _ in range(times):
            resp = await self._post("subscriptions", {"openid": openid, "template_ids": list(template_ids)})
        return resp.json()["subscriptions"]

    async def expire_tokens(self) -> None:
        await self._post("expire-tokens")

    async def calls(self, path: str) -> list[dict]:
        resp = await self.client.get("/sandbox/control/calls", params={"path": path})
        return resp.json()["calls"]


@dataclass
class LoggedIn:
    openid: str
    access_token: str
    refresh_token: str
    body: dict = field(repr=False)

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.access_token}"}


def new_openid() -> str:
    return "o" + secrets.token_urlsafe(20)[:27]


async def login_new_user(client: httpx.AsyncClient, sandbox: Sandbox, openid: str | None = None, **kw) -> LoggedIn:
    minted = await sandbox.login_code(openid or new_openid(), **kw)
    resp = await client.post("/api/v1/auth/login", json={"code": minted["code"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return LoggedIn(minted["openid"], body["access_token"], body["refresh_token"], body)


def assert_error(resp: httpx.Response, status: int, code: str, field: str | None = None) -> dict:
    assert resp.status_code == status, f"{resp.status_code} {resp.text}"
    body = resp.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if field is not None:
        assert body["error"].get("field") == field, body
    assert resp.headers.get("x-request-id")
    return body["error"]


# -- identity ---------------------------------------------------------------------------------------

import random  # noqa: E402

from tests.identity_data import CHINESE_NAMES, make_card_number, make_id_number  # noqa: E402


@dataclass
class Person:
    name: str
    id_number: str
    phone: str
    card_number: str
    valid_until: str = "20400101"


def new_person(**kw) -> Person:
    base = dict(
        name=random.choice(CHINESE_NAMES),
        id_number=make_id_number(),
        phone="13" + "".join(random.choice("0123456789") for _ in range(9)),
        card_number=make_card_number(),
    )
    base.update(kw)
    return Person(**base)


async def id_card_image(sandbox: Sandbox, person: Person, side: str, **kw) -> bytes:
    body = {"side": side, "name": person.name, "id_number": person.id_number, "valid_until": person.valid_until,
            "address": "北京市朝阳区建国路1号", **kw}
    resp = await sandbox._post("id-card-images", body)
    return resp.content


async def upload(client: httpx.AsyncClient, user: LoggedIn, data: bytes, kind: str, filename: str = "photo.png") -> httpx.Response:
    return await client.post(
        "/api/v1/uploads", headers=user.headers, files={"file": (filename, data, "image/png")}, data={"kind": kind}
    )


async def upload_id_photos(client, sandbox, user, person: Person, **kw) -> tuple[int, int]:
    ids = []
    for side, kind in (("front", "id_front"), ("back", "id_back")):
        resp = await upload(client, user, await id_card_image(sandbox, person, side, **kw), kind)
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    return ids[0], ids[1]


async def verify_id_card(client, sandbox, user, person: Person, *, typed_name: str | None = None,
                         typed_id: str | None = None) -> httpx.Response:
    front, back = await upload_id_photos(client, sandbox, user, person)
    return await client.post(
        "/api/v1/identity/id-card",
        headers=user.headers,
        json={"front_upload_id": front, "back_upload_id": back, "name": typed_name or person.name,
              "id_number": typed_id or person.id_number},
    )


async def pass_face(client, sandbox, user, result: str = "pass") -> httpx.Response:
    started = await client.post("/api/v1/identity/face", headers=user.headers)
    assert started.status_code == 201, started.text
    verify_id = started.json()["verify_id"]
    await sandbox._post(f"face/{verify_id}", {"result": result})
    return await client.post(f"/api/v1/identity/face/{verify_id}/result", headers=user.headers)


async def register_card(sandbox: Sandbox, person: Person, card_class: str = "I", **kw) -> None:
    await sandbox._post("bank-cards", {"card_number": person.card_number, "name": person.name,
                                      "id_number": person.id_number, "phone": person.phone,
                                      "card_class": card_class, **kw})


async def verified_user(client, sandbox, person: Person | None = None) -> tuple[LoggedIn, Person]:
    """A logged-in user who has passed all three checks."""
    person = person or new_person()
    user = await login_new_user(client, sandbox)
    assert (await verify_id_card(client, sandbox, user, person)).status_code == 200
    assert (await pass_face(client, sandbox, user)).json()["passed"] is True
    await register_card(sandbox, person)
    resp = await client.post("/api/v1/identity/bank-card", headers=user.headers,
                             json={"card_number": person.card_number, "reserved_phone": person.phone})
    assert resp.status_code == 200, resp.text
    return user, person


async def audited_moves(entity_type: str, entity_id: int | str) -> list[tuple[str, str, str, str]]:
    """A row's status moves as the audit chain holds them, oldest first: ``(action, actor, from, to)``.
    The chain is verified first (``python -m app audit verify``'s check), so a move it holds is one an
    edit or a deletion could not hide."""
    from models.audit import AuditEvent
    from services import audit

    report = await audit.verify()
    assert report.ok, report
    events = await AuditEvent.filter(entity_type=entity_type, entity_id=str(entity_id)).order_by("seq")
    return [(e.action, e.actor, e.data.get("from"), e.data.get("to")) for e in events]


async def rules_in_force(rule_list: list, **fields) -> int:
    """Put ``rule_list`` in force as the next risk rule-set version (through the audited load); returns it."""
    import json

    from models.risk import RiskRuleSet
    from services.risk import rules

    newest = await RiskRuleSet.all().order_by("-version").first()
    version = (newest.version if newest else 0) + 1
    await rules.load(rules.parse(json.dumps({**fields, "version": version, "rules": list(rule_list)})), actor="test")
    return version
