"""Uploads of ID photos and signature images: checked by content, encrypted at rest, owner-only."""

from __future__ import annotations

import asyncio
import hashlib
import io

from PIL import Image, UnidentifiedImageError

from core.errors import NotFound, ValidationFailed
from models.identity import Upload, UploadKind
from services.context import ServiceContext
from services.identity.errors import FileTooLarge, UnsupportedFileType

UPLOAD_PURPOSE = "upload"
_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
MAX_PIXELS = 40_000_000


def sniff(data: bytes) -> str | None:
    for magic, ctype in _MAGIC.items():
        if data.startswith(magic):
            return ctype
    return None


def _decodes(data: bytes, expected: str) -> bool:
    """The bytes really are an image of the sniffed type (not a renamed file with a faked header)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            w, h = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
    return {"JPEG": "image/jpeg", "PNG": "image/png"}.get(fmt or "") == expected and 0 < w * h <= MAX_PIXELS


async def create_upload(ctx: ServiceContext, user_id: int, *, kind: str, data: bytes | None) -> Upload:
    try:
        upload_kind = UploadKind(kind)
    except ValueError:
        raise ValidationFailed("kind 须为 id_front、id_back 或 signature", field="kind") from None
    if not data:
        raise ValidationFailed("请选择要上传的文件", field="file")
    if len(data) > ctx.settings.upload_max_bytes:
        raise FileTooLarge(field="file")
    ctype = sniff(data)
    if ctype is None or not await asyncio.to_thread(_decodes, data, ctype):
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
        raise NotFound("上传的文件不存在", code="UPLOAD_NOT_FOUND", field=field)
    if upload.kind != kind:
        raise ValidationFailed(f"上传文件类型应为 {kind.value}", field=field)
    data = await ctx.storage.get(upload.storage_key, purpose=UPLOAD_PURPOSE)
    return upload, data


def public_upload(upload: Upload) -> dict:
    return {"id": upload.id, "kind": upload.kind.value, "size": upload.size, "content_type": upload.content_type}
