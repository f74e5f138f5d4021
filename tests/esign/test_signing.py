import asyncio
import datetime as dt
import io
import shutil
import socket
import subprocess

import pytest
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from reportlab.pdfgen.canvas import Canvas

from services.esign.errors import ContractAlreadySigned, SignatureImageInvalid, TimestampUnavailable
from services.esign.render import render_contract
from services.esign.signing import SIGNATURE_FIELD, load_signature_image, sign_contract, sign_contract_async
from services.esign.verification import verify_pdf, verify_pdf_async

from .helpers import CONTEXT, SIGNED_AT, SIGNER_LINES, signature_png


def sign(pdf, identity, **kw):
    kw.setdefault("signature_png", signature_png())
    kw.setdefault("signer_lines", SIGNER_LINES)
    kw.setdefault("signed_at", SIGNED_AT)
    return sign_contract(pdf, identity=identity, **kw)


def test_signed_contract_is_intact_valid_and_trusted(signed_pdf, identity):
    result = verify_pdf(signed_pdf, trust_roots=identity.trust_roots)
    assert result.signed and result.intact and result.valid and result.trusted
    assert not result.modified_after_signing
    assert result.ok and result.problems == []
    assert not result.timestamped
    assert "Sandbox Bank E-Contract Signing (dev)" in result.signer_subject


def test_signature_is_pades_on_the_last_page(signed_pdf):
    reader = PdfFileReader(io.BytesIO(signed_pdf))
    (sig,) = reader.embedded_signatures
    assert sig.field_name == SIGNATURE_FIELD
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    assert sig.sig_object["/Reason"]
    count = int(reader.root["/Pages"]["/Count"])
    last_page, _ = reader.find_page_for_modification(count - 1)
    widget = sig.sig_field
    assert widget.raw_get("/P").idnum == last_page.idnum
    assert SIGNATURE_FIELD in [str(a.get_object().get("/T")) for a in last_page.get_object()["/Annots"]]
    x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
    assert x2 - x1 > 100 and y2 - y1 > 80  # a visible box, not an invisible signature
    # The handwritten image is drawn into the page content (inside the signed revision).
    assert b"/Subtype /Image" in signed_pdf or b"/Subtype/Image" in signed_pdf
    assert sig.signed_revision == 1 and reader.xrefs.total_revisions == 2


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_signer_lines_and_bank_seal_are_visible(signed_pdf_file):
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(signed_pdf_file), "-"], capture_output=True,
                          text=True, check=True).stdout
    last = [p for p in text.split("\f") if p.strip()][-1].replace(" ", "")
    assert "签署时间：2026-11-2010:30:00（北京时间）" in last  # 02:30 UTC shown in Beijing time
    for line in SIGNER_LINES:
        assert line.replace(" ", "") in last
    assert "沙箱银行(dev)电子签章" in last and "PAdESB-B" in last


def test_a_pdf_without_a_reserved_area_can_be_signed(identity):
    buf = io.BytesIO()
    c = Canvas(buf)
    c.drawString(100, 700, "Some other document")
    c.showPage()
    c.save()
    signed = sign(buf.getvalue(), identity)
    assert verify_pdf(signed, trust_roots=identity.trust_roots).ok


def test_signing_twice_is_refused(signed_pdf, identity):
    with pytest.raises(ContractAlreadySigned):
        sign(signed_pdf, identity)


def test_signed_at_must_be_aware(unsigned_pdf, identity):
    with pytest.raises(ValueError):
        sign(unsigned_pdf, identity, signed_at=dt.datetime(2026, 11, 20, 10, 30))


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def gif_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("P", (100, 50)).save(buf, "GIF")
    return buf.getvalue()


NOT_SIGNATURES = {
    "empty": b"",
    "text": "我的签名".encode(),
    "pdf": b"%PDF-1.4\n%...",
    "gif": gif_bytes(),
    "png-magic-then-garbage": b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50,
    "truncated-png": signature_png()[:300],
    "jpeg-magic-then-garbage": b"\xff\xd8\xff\xe0" + b"x" * 500,
    "blank-white": png_bytes(Image.new("RGB", (400, 150), "white")),
    "fully-transparent": png_bytes(Image.new("RGBA", (400, 150), (0, 0, 0, 0))),
    "tiny": png_bytes(Image.new("L", (4, 4), 0)),
    "huge": b"\x89PNG\r\n\x1a\n" + b"\x00" * (3 * 1024 * 1024),
}


@pytest.mark.parametrize("name", sorted(NOT_SIGNATURES))
def test_signature_image_is_checked_by_content(name, unsigned_pdf, identity):
    with pytest.raises(SignatureImageInvalid) as err:
        sign(unsigned_pdf, identity, signature_png=NOT_SIGNATURES[name])
    assert err.value.status == 422 and err.value.code == "SIGNATURE_IMAGE_INVALID"


def test_jpeg_signatures_are_accepted(unsigned_pdf, identity):
    assert load_signature_image(signature_png(fmt="JPEG")).mode == "RGBA"
    signed = sign(unsigned_pdf, identity, signature_png=signature_png(fmt="JPEG"))
    assert verify_pdf(signed, trust_roots=identity.trust_roots).ok


def test_large_images_are_scaled_down():
    assert max(load_signature_image(signature_png(size=(2400, 800))).size) <= 900


async def test_async_signing_leaves_the_event_loop_free(unsigned_pdf, identity):
    ticks = 0
    done = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.002)

    task = asyncio.create_task(ticker())
    signed = await sign_contract_async(
        unsigned_pdf, identity=identity, signature_png=signature_png(), signer_lines=SIGNER_LINES,
        signed_at=SIGNED_AT,
    )
    done.set()
    await task
    assert ticks >= 3  # the loop kept running while the thread signed
    assert (await verify_pdf_async(signed, trust_roots=identity.trust_roots)).ok


def test_b_t_with_a_timestamp_authority(signed_bt_pdf, identity, tsa):
    assert tsa.requests >= 1
    result = verify_pdf(signed_bt_pdf, trust_roots=identity.trust_roots)
    assert result.ok and result.timestamped, result.problems
    assert abs(result.signed_at - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)
    reader = PdfFileReader(io.BytesIO(signed_bt_pdf))
    assert "signature_time_stamp_token" in str(
        reader.embedded_signatures[0].signer_info["unsigned_attrs"].native
    )


def test_timestamper_is_reused_per_url(unsigned_pdf, identity, tsa):
    sign(unsigned_pdf, identity, tsa_url=tsa.url)  # may also fetch the size-estimation dummy token
    before = tsa.requests
    sign(unsigned_pdf, identity, tsa_url=tsa.url)
    sign(unsigned_pdf, identity, tsa_url=tsa.url)
    assert tsa.requests - before == 2  # then one token per signature


def test_timestamp_authority_down(unsigned_pdf, identity):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TimestampUnavailable) as err:
        sign(unsigned_pdf, identity, tsa_url=f"http://127.0.0.1:{port}/tsa")
    assert err.value.status == 503


def test_contract_for_other_templates_sign_and_verify(identity):
    pdf = render_contract("etc_autodebit", CONTEXT, contract_ref="C-ETC-1").pdf
    result = verify_pdf(sign(pdf, identity), trust_roots=identity.trust_roots)
    assert result.ok
    assert (result.contract_ref, result.template, result.variant) == ("C-ETC-1", "etc_autodebit", None)


def test_a_stale_placeholder_size_is_recovered_from(unsigned_pdf, identity, monkeypatch):
    from services.esign import signing

    key = (identity.fingerprint_sha256, None)
    sign(unsigned_pdf, identity)
    good = signing._reserved_sizes[key]
    monkeypatch.setitem(signing._reserved_sizes, key, 64)  # far too small for any CMS
    signed = sign(unsigned_pdf, identity)
    assert verify_pdf(signed, trust_roots=identity.trust_roots).ok
    assert abs(signing._reserved_sizes[key] - good) < 64  # re-estimated (ECDSA lengths vary a little)


def test_concurrent_signing_in_threads(unsigned_pdf, identity):
    """pyHanko's asn1crypto objects are not thread-safe; each signature must use its own."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        signed = list(pool.map(lambda _: sign(unsigned_pdf, identity), range(8)))
    assert all(verify_pdf(pdf, trust_roots=identity.trust_roots).ok for pdf in signed)


def test_signing_works_with_the_fallback_font(unsigned_pdf, identity, monkeypatch):
    from services.esign.render import reset_font_cache

    monkeypatch.delenv("CJK_FONT_PATH", raising=False)
    reset_font_cache()
    try:
        signed = sign(unsigned_pdf, identity, font_search_paths=())
    finally:
        reset_font_cache()
    assert b"STSong-Light" in signed
    assert verify_pdf(signed, trust_roots=identity.trust_roots).ok
