"""Put the signer's handwritten signature on the contract and sign it as the bank (PAdES).

One incremental update does both: the signer's box (handwritten image, signing time, the caller's
lines) is drawn with reportlab and stamped into the last page's content, and the bank's signature
field is added over the bank box with a seal-like appearance; pyHanko then signs that revision. So the
handwritten part is inside what the bank's signature covers, and the signature covers the whole file
(``ENTIRE_FILE``): any later byte change or appended update is detectable.

PAdES baseline B-B (``ETSI.CAdES.detached``); B-T when a TSA URL is given (RFC 3161 token over the
signature, ``HTTPTimeStamper``).

Times: ``signed_at`` is the signer's moment (consent + face check), printed in the signer's box; the
bank's signature carries the real time of signing (``/M``; the TSA's time for B-T), never a caller's.

``sign_contract_async`` runs the work in a thread (``asyncio.to_thread``). pyHanko's synchronous API
drives its own event loop with ``asyncio.run``, which cannot run on the server's loop; a thread shares
the parsed key and font with no set-up, while a process pool would have to ship the key material to
each child and re-parse the 5 MB font there, and Sanic already gives us processes (workers) for
parallelism. The work is pure Python under the GIL, so threads keep the event loop responsive
(it gets the GIL every switch interval) rather than add throughput. Everything shared between threads
is thread-safe: the ``cryptography`` key object; reportlab runs under ``REPORTLAB_LOCK``; pyHanko's
asn1crypto objects are made fresh for every signature (``BankSigningIdentity.make_signer``), because
asn1crypto re-encodes shared objects in place and two threads doing so corrupt each other's CMS.
"""

from __future__ import annotations

import asyncio
import binascii
import datetime as dt
import io
import re
from collections.abc import Sequence

import aiohttp
from asn1crypto import cms
from PIL import Image, ImageOps
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.content import PdfContent
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import AxisAlignment, BoxConstraints, Margins, SimpleBoxLayoutRule
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper, TimestampRequestError
from pyhanko.stamp import StaticStampStyle
from reportlab.lib import colors
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from core.clock import CHINA_TZ

from ._sync import refuse_running_loop
from .certs import BankSigningIdentity
from .errors import ContractAlreadySigned, SignatureImageInvalid, SigningFailed, TimestampUnavailable
from .layout import AREA_HEIGHT, Rect, SignatureArea
from .render import REPORTLAB_LOCK, FontChoice, resolve_font

SIGNATURE_FIELD = "BankSignature"
MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
SEAL_RED = colors.Color(0.78, 0.08, 0.08)


# --------------------------------------------------------------------------------------------------
# The handwritten signature image


def load_signature_image(data: bytes) -> Image.Image:
    """Check a handwritten-signature upload by content and return it decoded (RGBA, ≤ 900×360).

    PNG or JPEG only, recognised by magic bytes and fully decoded by Pillow; not blank."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise SignatureImageInvalid("未收到签名图片", field="signature")
    if len(data) > MAX_IMAGE_BYTES:
        raise SignatureImageInvalid("签名图片过大", field="signature")
    if data.startswith(PNG_MAGIC):
        fmt = "PNG"
    elif data.startswith(JPEG_MAGIC):
        fmt = "JPEG"
    else:
        raise SignatureImageInvalid("签名图片须为 PNG 或 JPEG 格式", field="signature")
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as probe:
            if probe.width * probe.height > MAX_IMAGE_PIXELS:
                raise SignatureImageInvalid("签名图片尺寸过大", field="signature")
            probe.verify()  # structure and checksums
        img = Image.open(io.BytesIO(data), formats=[fmt])
        img.load()  # the pixels themselves (truncated data fails here)
    except SignatureImageInvalid:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise SignatureImageInvalid("签名图片已损坏，无法识别", field="signature") from exc
    if img.width < 16 or img.height < 8:
        raise SignatureImageInvalid("签名图片尺寸过小", field="signature")
    img = ImageOps.exif_transpose(img).convert("RGBA")
    # Blank: nothing darker than near-white once composited on white.
    flat = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img).convert("L")
    if flat.getextrema()[0] > 235:
        raise SignatureImageInvalid("签名为空，请重新手写签名", field="signature")
    img.thumbnail((900, 360))
    return img


# --------------------------------------------------------------------------------------------------
# Appearances


def _fit(text: str, font: str, size: float, width: float, min_size: float = 5.5) -> tuple[str, float]:
    while size > min_size and stringWidth(text, font, size) > width:
        size -= 0.5
    while stringWidth(text, font, size) > width and len(text) > 1:
        text = text[:-2] + "…"
    return text, size


def _signer_overlay(
    page_size: tuple[float, float],
    box: Rect,
    image: Image.Image,
    lines: Sequence[str],
    font: FontChoice,
) -> bytes:
    """A page-sized PDF with the signer's image and lines in ``box``, everything else transparent."""
    content = SignatureArea.content(box)
    size, leading = 7.5, 9.5
    text_h = len(lines) * leading
    img_area = Rect(content.x, content.y + text_h + 3, content.w, max(content.h - text_h - 3, 20))
    scale = min(img_area.w / image.width, img_area.h / image.height)
    w, h = image.width * scale, image.height * scale
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=page_size, initialFontName=font.name, pageCompression=1)
    c.drawImage(ImageReader(image), img_area.x + 4, img_area.y + (img_area.h - h) / 2, w, h, mask="auto")
    c.setFillColor(colors.HexColor("#1a1a1a"))
    y = content.y + text_h - size
    for line in lines:
        text, fs = _fit(line, font.name, size, content.w)
        c.setFont(font.name, fs)
        c.drawString(content.x + 2, y, text)
        y -= leading
    c.showPage()
    c.save()
    return buf.getvalue()


def _bank_seal(width: float, height: float, lines: Sequence[str], font: FontChoice) -> bytes:
    """A box-sized PDF: the bank's signature appearance."""
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(width, height), initialFontName=font.name, pageCompression=1)
    c.setStrokeColor(SEAL_RED)
    c.setFillColor(SEAL_RED)
    c.setLineWidth(1.2)
    c.roundRect(2, 2, width - 4, height - 4, 6, stroke=1, fill=0)
    head, *rest = lines
    text, fs = _fit(head, font.name, 11, width - 16)
    c.setFont(font.name, fs)
    c.drawCentredString(width / 2, height - 20, text)
    c.setLineWidth(0.5)
    c.line(10, height - 26, width - 10, height - 26)
    y = height - 38
    for line in rest:
        text, fs = _fit(line, font.name, 7.5, width - 16)
        c.setFont(font.name, fs)
        c.drawString(9, y, text)
        y -= 10.5
    c.showPage()
    c.save()
    return buf.getvalue()


class _ImportedPdfBytes(PdfContent):
    """Like pyHanko's ``ImportedPdfPage``, from bytes instead of a file name."""

    def __init__(self, data: bytes):
        super().__init__()
        self._data = data

    def render(self) -> bytes:
        xobj = self._ensure_writer.import_page_as_xobject(PdfFileReader(io.BytesIO(self._data)))
        name = "/Seal" + binascii.hexlify(xobj.idnum.to_bytes(4, "big")).decode()
        self.resources.xobject[name] = xobj
        x1, y1, x2, y2 = xobj.get_object()["/BBox"]
        self.box = BoxConstraints(width=abs(x2 - x1), height=abs(y2 - y1))
        return name.encode() + b" Do"


def _stamp_page(writer: IncrementalPdfFileWriter, page_ix: int, overlay_pdf: bytes) -> None:
    """Draw the first page of ``overlay_pdf`` over page ``page_ix``, isolated from its graphics state."""
    xobj = writer.import_page_as_xobject(PdfFileReader(io.BytesIO(overlay_pdf)))
    # Wrap the existing content in q … Q so an unbalanced CTM there cannot move our overlay.
    opening = writer.add_object(generic.StreamObject(stream_data=b"q\n"))
    writer.add_stream_to_page(page_ix, opening, prepend=True)
    closing = writer.add_object(generic.StreamObject(stream_data=b"Q\nq /EsignSigner Do Q\n"))
    resources = generic.DictionaryObject(
        {pdf_name("/XObject"): generic.DictionaryObject({pdf_name("/EsignSigner"): xobj})}
    )
    writer.add_stream_to_page(page_ix, closing, resources=resources)


# --------------------------------------------------------------------------------------------------
# Signing


def _signature_area(reader: PdfFileReader, page_count: int, page_w: float) -> SignatureArea:
    """Where the renderer put the signature area; the bottom of the last page for foreign PDFs."""
    try:
        info = reader.trailer["/Info"]
        area = SignatureArea.from_list(info["/SignatureArea"])
        if area.page == page_count - 1:
            return area
    except (KeyError, TypeError, ValueError):
        pass
    margin = 56.7
    return SignatureArea(page_count - 1, margin, margin, page_w - 2 * margin, AREA_HEIGHT)


_dummy_tokens: dict[tuple[str, str], bytes] = {}
_reserved_sizes: dict[tuple[str, str | None], int] = {}
_BYTE_RANGE_RE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


class _HTTPTimeStamper(HTTPTimeStamper):
    """``HTTPTimeStamper`` whose size-estimation token is fetched once per TSA URL per process.

    pyHanko asks the TSA for a dummy token to size the signature placeholder, and caches it on the
    instance. Sharing an instance across threads would share that asn1crypto object (not thread-safe),
    so each signature gets a fresh instance and the token is cached here as DER and re-parsed."""

    async def async_dummy_response(self, md_algorithm):
        der = _dummy_tokens.get((self.url, md_algorithm))
        if der is None:
            token = await super().async_dummy_response(md_algorithm)
            _dummy_tokens[(self.url, md_algorithm)] = token.dump()
            return token
        token = cms.ContentInfo.load(der)
        self._register_dummy(md_algorithm, token)
        return token


def sign_contract(
    pdf_bytes: bytes,
    *,
    identity: BankSigningIdentity,
    signature_png: bytes,
    signer_lines: Sequence[str],
    signed_at: dt.datetime,
    tsa_url: str | None = None,
    reason: str = "合同签署：甲方手写签名并经意愿认证，乙方加具电子签章",
    location: str = "中国",
    timestamper: TimeStamper | None = None,
    font_path: str | None = None,
    font_search_paths: Sequence[tuple[str, int]] | None = None,
) -> bytes:
    """Return the signed PDF.

    ``signature_png``: the handwritten signature (PNG or JPEG bytes, checked by content).
    ``signer_lines``: printed under it as given — pass masked values only (name, ID number,
    verification ids); the first line, the signing time, is made here from ``signed_at`` (aware).
    ``tsa_url``: an RFC 3161 TSA for PAdES B-T (``timestamper`` overrides it, e.g. in tests).
    Raises ``SignatureImageInvalid``, ``ContractAlreadySigned``, ``TimestampUnavailable``,
    ``SigningFailed``."""
    refuse_running_loop("sign_contract_async")
    if signed_at.tzinfo is None:
        raise ValueError("signed_at must be timezone-aware")
    image = load_signature_image(signature_png)
    reader, page_count, mediabox = _unsigned_last_page(pdf_bytes, "合同文件无法解析")
    page_w, page_h = mediabox[2], mediabox[3]
    area = _signature_area(reader, page_count, page_w - mediabox[0])

    font = resolve_font(font_path, font_search_paths)
    lines = [f"签署时间：{signed_at.astimezone(CHINA_TZ):%Y-%m-%d %H:%M:%S}（北京时间）", *signer_lines]
    with REPORTLAB_LOCK:
        overlay = _signer_overlay((page_w, page_h), area.customer_box, image, lines, font)
    return _sign_as_bank(pdf_bytes, identity=identity, page_ix=page_count - 1,
                         seal_box=SignatureArea.content(area.bank_box), overlay=overlay, reason=reason,
                         location=location, tsa_url=tsa_url, timestamper=timestamper, font=font)


def _unsigned_last_page(pdf_bytes: bytes, unreadable: str) -> tuple[PdfFileReader, int, list[float]]:
    """The document's reader, page count and last page's MediaBox; refused if it is signed already
    (``ContractAlreadySigned``) or cannot be read (``SigningFailed(unreadable)``)."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf_bytes))
        if reader.embedded_signatures:
            raise ContractAlreadySigned()
        page_count = int(reader.root["/Pages"]["/Count"])
        page_ref, _ = reader.find_page_for_modification(page_count - 1)
        return reader, page_count, [float(v) for v in page_ref.get_object()["/MediaBox"]]
    except ContractAlreadySigned:
        raise
    except (PdfError, KeyError, TypeError, ValueError) as exc:
        raise SigningFailed(unreadable) from exc


def seal_document(
    pdf_bytes: bytes,
    *,
    identity: BankSigningIdentity,
    reason: str,
    tsa_url: str | None = None,
    location: str = "中国",
    timestamper: TimeStamper | None = None,
    font_path: str | None = None,
    font_search_paths: Sequence[tuple[str, int]] | None = None,
) -> bytes:
    """The bank's signature alone, on a document the bank issues (an account statement): its seal goes
    in the bank box of the document's signature area (``/SignatureArea``), and nobody else signs. The
    same PAdES profile, appearance and errors as ``sign_contract``."""
    refuse_running_loop("ContractWorkers.statement")
    reader, page_count, mediabox = _unsigned_last_page(pdf_bytes, "文件无法解析")
    area = _signature_area(reader, page_count, mediabox[2] - mediabox[0])
    return _sign_as_bank(pdf_bytes, identity=identity, page_ix=area.page,
                         seal_box=SignatureArea.content(area.bank_box), overlay=None, reason=reason,
                         location=location, tsa_url=tsa_url, timestamper=timestamper,
                         font=resolve_font(font_path, font_search_paths))


def _sign_as_bank(
    pdf_bytes: bytes,
    *,
    identity: BankSigningIdentity,
    page_ix: int,
    seal_box: Rect,
    overlay: bytes | None,
    reason: str,
    location: str,
    tsa_url: str | None,
    timestamper: TimeStamper | None,
    font: FontChoice,
) -> bytes:
    """One incremental update: ``overlay`` (the signer's box, if any) stamped on page ``page_ix``, and
    the bank's PAdES signature field over ``seal_box`` with the seal as its appearance."""
    own_timestamper = timestamper is None
    if own_timestamper and tsa_url:
        timestamper = _HTTPTimeStamper(tsa_url, timeout=10)
    now = dt.datetime.now(CHINA_TZ)
    seal_lines = [
        f"{identity.organization or identity.common_name or '银行'} 电子签章",
        f"证书主体：{identity.common_name or identity.subject}",
        f"证书序列号：{identity.serial_hex}",
        f"签章时间：{now:%Y-%m-%d %H:%M:%S}（北京时间）",
        "签名格式：PAdES " + ("B-T（含可信时间戳）" if timestamper else "B-B"),
        "签章后文件的任何改动均可被检测",
    ]
    with REPORTLAB_LOCK:
        seal = _bank_seal(seal_box.w, seal_box.h, seal_lines, font)

    meta = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason=reason,
        location=location,
        name=identity.organization or identity.common_name,
    )
    field_spec = fields.SigFieldSpec(SIGNATURE_FIELD, on_page=page_ix, box=seal_box.box)

    def sign_once(bytes_reserved: int | None) -> bytes:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf_bytes))
        if overlay is not None:
            _stamp_page(writer, page_ix, overlay)
        style = StaticStampStyle(
            border_width=0,
            background=_ImportedPdfBytes(seal),
            background_opacity=1.0,
            background_layout=SimpleBoxLayoutRule(
                x_align=AxisAlignment.ALIGN_MID, y_align=AxisAlignment.ALIGN_MID, margins=Margins.uniform(0)
            ),
        )
        pdf_signer = signers.PdfSigner(
            meta, signer=identity.make_signer(), timestamper=timestamper, stamp_style=style,
            new_field_spec=field_spec,
        )
        return pdf_signer.sign_pdf(writer, bytes_reserved=bytes_reserved).getvalue()

    # pyHanko sizes the /Contents placeholder by building a throw-away signature first, which costs
    # as much as the real one. The size only depends on the key, the chain and the TSA, so reuse it.
    cache_key = (identity.fingerprint_sha256, tsa_url) if own_timestamper else None
    reserved = _reserved_sizes.get(cache_key) if cache_key else None
    tsa_errors = (TimestampRequestError, aiohttp.ClientError, asyncio.TimeoutError, OSError)
    try:
        try:
            out = sign_once(reserved)
        except SigningError as exc:
            if reserved is None or "larger than expected" not in str(exc):
                raise
            out = sign_once(None)  # the cached size was too small (a TSA's token grew): estimate afresh
    except tsa_errors as exc:
        if timestamper is None:
            raise
        raise TimestampUnavailable() from exc
    except SigningError as exc:
        if timestamper is not None and isinstance(exc.__cause__, tsa_errors):
            raise TimestampUnavailable() from exc
        raise SigningFailed() from exc
    if cache_key:
        _reserved_sizes[cache_key] = _placeholder_size(out)
    return out


def _placeholder_size(signed: bytes) -> int:
    """Hex digits reserved for /Contents in the last signature of ``signed``."""
    ranges = _BYTE_RANGE_RE.findall(signed[-65536:]) or _BYTE_RANGE_RE.findall(signed)
    _, gap_start, gap_end, _ = (int(v) for v in ranges[-1])
    return gap_end - gap_start - 2


async def sign_contract_async(pdf_bytes: bytes, **kwargs) -> bytes:
    """``sign_contract`` off the event loop (see the module docstring for why a thread)."""
    return await asyncio.to_thread(sign_contract, pdf_bytes, **kwargs)


__all__ = [
    "SIGNATURE_FIELD",
    "load_signature_image",
    "seal_document",
    "sign_contract",
    "sign_contract_async",
]
