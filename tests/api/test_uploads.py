"""Uploads: type by content, size limit, encrypted at rest, owner-only."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from tests.helpers import assert_error, login_new_user, new_person, id_card_image, upload


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, format="JPEG")
    return buf.getvalue()


async def test_png_and_jpeg_are_accepted_and_encrypted_at_rest(client, sandbox, user, settings):
    png = await id_card_image(sandbox, new_person(), "front")
    resp = await upload(client, user, png, "id_front")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["kind"] == "id_front" and body["content_type"] == "image/png" and body["size"] == len(png)
    jpg = await upload(client, user, jpeg_bytes(), "signature", filename="sig.png")  # name lies; content decides
    assert jpg.status_code == 201 and jpg.json()["content_type"] == "image/jpeg"
    stored = [p for p in (Path(settings.var_dir) / "uploads").rglob("*") if p.is_file()]
    assert stored and all(png[100:200] not in p.read_bytes() and not p.read_bytes().startswith(b"\x89PNG") for p in stored)


async def test_files_that_are_not_jpeg_or_png_are_refused(client, user):
    # 422: the request's media type (multipart) is right; the file inside is not an image we take.
    assert_error(await upload(client, user, b"GIF89a" + b"\x00" * 100, "id_front"), 422, "UNSUPPORTED_FILE_TYPE", "file")
    assert_error(await upload(client, user, b"just text, named .png", "id_front"), 422, "UNSUPPORTED_FILE_TYPE", "file")
    fake_png = b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10
    assert_error(await upload(client, user, fake_png, "id_front"), 422, "UNSUPPORTED_FILE_TYPE", "file")
    resp = await client.post("/api/v1/uploads", headers=user.headers, json={"kind": "id_front"})
    assert_error(resp, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_oversize_file_is_413(client, user, settings):
    big = jpeg_bytes() + b"\x00" * (settings.upload_max_bytes + 1)
    assert_error(await upload(client, user, big, "id_front"), 413, "FILE_TOO_LARGE", "file")


async def test_kind_and_file_are_required(client, user):
    assert_error(await upload(client, user, jpeg_bytes(), "passport"), 422, "VALIDATION_ERROR", "kind")
    resp = await client.post("/api/v1/uploads", headers=user.headers, data={"kind": "id_front"},
                             files={"other": ("a.jpg", jpeg_bytes())})
    assert_error(resp, 422, "VALIDATION_ERROR", "other")  # unknown fields are refused, not ignored
    resp = await client.post("/api/v1/uploads", headers=user.headers, data={"kind": "id_front", "x": "1"},
                             files={"file": ("a.jpg", jpeg_bytes())})
    assert_error(resp, 422, "VALIDATION_ERROR", "x")
    resp = await client.post("/api/v1/uploads", headers=user.headers, data={"kind": "id_front"},
                             files=[("file", ("a.jpg", jpeg_bytes())), ("file", ("b.jpg", jpeg_bytes()))])
    assert_error(resp, 422, "VALIDATION_ERROR", "file")
    resp = await client.post("/api/v1/uploads", headers=user.headers, data={"kind": "id_front"},
                             files={"kind": ("k.txt", b"x")})
    assert_error(resp, 422, "VALIDATION_ERROR", "kind")  # kind twice (a field and a file)
    resp = await client.post("/api/v1/uploads", headers=user.headers, files={"kind": (None, "id_front")})
    assert_error(resp, 422, "VALIDATION_ERROR", "file")  # multipart with no file


async def test_multipart_without_a_boundary_is_400(client, user):
    resp = await client.post("/api/v1/uploads", headers={**user.headers, "content-type": "multipart/form-data"},
                             content=b"--x\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nid_front\r\n--x--\r\n")
    assert_error(resp, 400, "INVALID_MULTIPART")
    assert_error(await client.post("/api/v1/uploads", files={"file": ("a.jpg", jpeg_bytes())}), 401, "UNAUTHORIZED")


async def test_another_users_upload_is_not_found(client, sandbox, user):
    person = new_person()
    mine = (await upload(client, user, await id_card_image(sandbox, person, "front"), "id_front")).json()["id"]
    back = (await upload(client, user, await id_card_image(sandbox, person, "back"), "id_back")).json()["id"]
    other = await login_new_user(client, sandbox)
    resp = await client.post(
        "/api/v1/identity/id-card",
        headers=other.headers,
        json={"front_upload_id": mine, "back_upload_id": back, "name": person.name, "id_number": person.id_number},
    )
    assert_error(resp, 404, "UPLOAD_NOT_FOUND", "front_upload_id")


async def test_a_part_with_an_empty_or_no_name_is_refused(client, user):
    boundary = "b0undary"
    for header in ('Content-Disposition: form-data; name=""', "Content-Disposition: form-data"):
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsignature\r\n"
                f"--{boundary}\r\n{header}\r\n\r\nfalse\r\n--{boundary}--\r\n").encode()
        resp = await client.post("/api/v1/uploads", content=body,
                                 headers={**user.headers, "content-type": f"multipart/form-data; boundary={boundary}"})
        assert_error(resp, 422, "VALIDATION_ERROR")
