"""Ways to damage a signed PDF, shared by the pyHanko and pdfsig tests."""

from __future__ import annotations

import io
import re

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader


def byte_range(signed: bytes) -> list[int]:
    m = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", signed)
    assert m, "no /ByteRange"
    return [int(x) for x in m.groups()]


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


def first_page_content_offset(signed: bytes) -> int:
    """An offset inside the data of the first page's (original) content stream."""
    reader = PdfFileReader(io.BytesIO(signed))
    page = reader.root["/Pages"]["/Kids"][0]
    ref = page.raw_get("/Contents")
    if isinstance(ref.get_object(), generic.ArrayObject):
        ref = ref.get_object().raw_get(0)
    idnum = ref.idnum
    header = re.search(rb"(?m)^%d 0 obj\b" % idnum, signed)
    assert header
    start = signed.index(b"stream", header.end()) + len(b"stream")
    start += 2 if signed[start:start + 2] == b"\r\n" else 1
    return start + 40


def flip_in_page_content(signed: bytes) -> bytes:
    index = first_page_content_offset(signed)
    assert index < byte_range(signed)[1], "must be inside the signed range"
    return flip(signed, index)


def flip_in_signature_value(signed: bytes) -> bytes:
    """A hex digit of the signature value itself (inside /Contents, so outside the digest).

    For B-B the CMS ends with the SignerInfo's signature value; the rest of /Contents is zero padding."""
    _, gap_start, gap_end, _ = byte_range(signed)
    hex_digits = signed[gap_start + 1:gap_end - 1].rstrip(b"0")
    index = gap_start + 1 + len(hex_digits) - 6
    digit = signed[index:index + 1]
    return signed[:index] + (b"1" if digit != b"1" else b"2") + signed[index + 1:]


def append_update(signed: bytes) -> bytes:
    """An incremental update after signing that changes the first page's content."""
    w = IncrementalPdfFileWriter(io.BytesIO(signed))
    stream = w.add_object(generic.StreamObject(stream_data=b"BT /F1 24 Tf 100 400 Td (PAID IN FULL) Tj ET"))
    w.add_stream_to_page(0, stream)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def relabel(signed: bytes, new_ref: str) -> bytes:
    """An incremental update after signing that rewrites /ContractRef in the Info dictionary."""
    w = IncrementalPdfFileWriter(io.BytesIO(signed))
    info_ref = w.trailer.raw_get("/Info")
    info_ref.get_object()[generic.pdf_name("/ContractRef")] = generic.TextStringObject(new_ref)
    w.mark_update(info_ref)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()
