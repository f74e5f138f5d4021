"""Helpers for contract tests: a handwritten-signature PNG and a signing flow over the API."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from tests.helpers import pass_face, upload


def signature_png() -> bytes:
    img = Image.new("RGBA", (400, 160), (255, 255, 255, 0))
    draw = ImageDraw.Draw(img)
    draw.line([(20, 120), (90, 30), (150, 130), (220, 40), (300, 120), (380, 60)], fill=(0, 0, 0, 255), width=6)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def prepare_privacy_consent(client, user) -> dict:
    resp = await client.post("/api/v1/contracts", headers=user.headers, json={"template": "privacy_consent"})
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


async def fresh_face(client, sandbox, user) -> str:
    resp = await pass_face(client, sandbox, user)
    assert resp.json()["passed"] is True, resp.text
    return resp.json()["verify_id"]


async def signature_upload(client, user) -> int:
    resp = await upload(client, user, signature_png(), "signature")
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def sign(client, user, contract_id: int, *, verify_id: str, upload_id: int, consent=True):
    return await client.post(
        f"/api/v1/contracts/{contract_id}/sign",
        headers={**user.headers, "User-Agent": "miniprogram-test/1.0"},
        json={"signature_upload_id": upload_id, "consent": consent, "verify_id": verify_id},
    )


async def prepared_contract(client, sandbox):
    """A new user with a verified ID card, and a privacy-consent draft: ``(user, contract)``."""
    from tests.helpers import login_new_user, new_person, verify_id_card

    user = await login_new_user(client, sandbox)
    assert (await verify_id_card(client, sandbox, user, new_person())).status_code == 200
    return user, await prepare_privacy_consent(client, user)
