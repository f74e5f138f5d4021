"""Uploads of ID photos and signature images: checked by content, encrypted at rest, owner-only."""

from __future__ import annotations

import asyncio
import hashlib
import io

from PIL import Image, UnidentifiedImageError

from core.errors import ValidationFailed
from models.identity import Upload, UploadKind
from services.context import ServiceContext
from services.identity.errors import FileTooLarge, ImageTooLarge, UnsupportedFileType, UploadKindMismatch, UploadNotFound

UPLOAD_PURPOSE = "upload"
_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
MAX_PIXELS = 40_000_000  # a 48 MP phone photo is ~48M; ID photos and signatures need far less
# WeChat's ID-card OCR refuses images over 2 MB, so ID photos are held to that at upload, where the
# user can still retake or compress them (the mini-program picks compressed images).
KIND_MAX_BYTES = {UploadKind.ID_FRONT: 2 * 1024 * 1024, UploadKind.ID_BACK: 2 * 1024 * 1024}


def sniff(data: bytes) -> str | None:
    for magic, ctype in _MAGIC.items():
        if data.startswith(magic):
            return ctype
    return None


def _inspect(data: bytes, expected: str) -> str:
    """``"ok"`` when the bytes really are an image of the sniffed type (not a renamed file with a faked
    header) of at most ``MAX_PIXELS``; ``"too_large"`` when its dimensions exceed that (a small file can
    declare a huge canvas that would take gigabytes to decode); ``"invalid"`` otherwise."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            w, h = img.size
            if w * h > MAX_PIXELS:
                return "too_large"
            img.verify()
    except Image.DecompressionBombError:
        return "too_large"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "invalid"
    ok = {"JPEG": "image/jpeg", "PNG": "image/png"}.get(fmt or "") == expected and w > 0 and h > 0
    return "ok" if ok else "invalid"


async def create_upload(ctx: ServiceContext, user_id: int, *, kind: str, data: bytes | None) -> Upload:
    try:
        upload_kind = UploadKind(kind)
    except ValueError:
        raise ValidationFailed("kind 须为 id_front、id_back 或 signature", field="kind") from None
    if not data:
        raise ValidationFailed("请选择要上传的文件", field="file")
    limit = min(ctx.settings.upload_max_bytes, KIND_MAX_BYTES.get(upload_kind, ctx.settings.upload_max_bytes))
    if len(data) > limit:
        raise FileTooLarge(f"文件不能超过 {limit // (1024 * 1024)}MB", field="file")
    ctype = sniff(data)
    verdict = await asyncio.to_thread(_inspect, data, ctype) if ctype else "invalid"
    if verdict == "too_large":
        raise ImageTooLarge(field="file")
    if verdict != "ok":
        raise UnsupportedFileType(field="file")
    key = await ctx.storage.put(data, purpose=UPLOAD_PURPOSE)
    return await Upload.create(
        user_id=user_id,
        kind=upload_kind,
        content_type=ctype,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_key=key,
    )


async def read_upload(ctx: ServiceContext, user_id: int, upload_id: int, *, kind: UploadKind, field: str) -> tuple[Upload, bytes]:
    """The owner's upload of the given kind, decrypted. Anyone else's is 'not found'."""
    upload = await Upload.get_or_none(id=upload_id, user_id=user_id)
    if upload is None:
        raise UploadNotFound(field=field)
    if upload.kind != kind:
        raise UploadKindMismatch(f"上传文件类型应为 {kind.value}", field=field)
    data = await ctx.storage.get(upload.storage_key, purpose=UPLOAD_PURPOSE)
    return upload, data

