"""Render a contract template to PDF, with an embedded CJK font subset.

What the user signs is the SHA-256 of these bytes, so rendering is deterministic: reportlab's
``invariant`` mode fixes the creation date and document id, and nothing else varies with the clock
(the contract date comes from the context). The contract reference, template code, variant and version
are written into the Info dictionary and into the footer of every page, so anyone holding the PDF can
tell which contract it is.

Fonts. An archived contract must carry its font, so we embed a TrueType subset: ``font_path`` or
``CJK_FONT_PATH`` (``CJK_FONT_INDEX`` picks a face in a .ttc), else the first of ``FONT_SEARCH_PATHS``
that loads (Debian's fonts-wqy-microhei first). reportlab cannot embed CFF-outlined OpenType fonts
(fonts-noto-cjk ships those), so such files are tried and skipped. When nothing loads we fall back to
the non-embedded ``STSong-Light`` CID font — the PDF still opens and signs, the viewer substitutes a font
— and say so once per process in the log.

Thread safety: reportlab keeps per-font mutable state (glyph subset assignment) and is not documented as
thread-safe, so building a PDF holds ``REPORTLAB_LOCK``. Rendering is pure Python and holds the GIL
anyway, so the lock costs no throughput.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.pdfdoc import PDFArray, PDFDate, PDFDictionary, PDFInfo, PDFName, PDFString
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer

from .layout import AREA_HEIGHT, BANK_LABEL, CUSTOMER_LABEL, LABEL_HEIGHT, PADDING, SignatureArea
from .templates import DEFAULT_BANK_NAME, Para, get_template

log = logging.getLogger(__name__)

# (path, face index in a .ttc). Debian package names in comments.
FONT_SEARCH_PATHS: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),  # fonts-wqy-microhei
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),  # fonts-wqy-zenhei
    ("/usr/share/fonts/truetype/arphic-gbsn00lp/gbsn00lp.ttf", 0),  # fonts-arphic-gbsn00lp
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),  # fonts-arphic-uming
    ("/usr/share/fonts/truetype/arphic/ukai.ttc", 0),  # fonts-arphic-ukai
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),  # fonts-droid-fallback
    ("/usr/share/fonts/truetype/noto/NotoSansSC-Regular.ttf", 0),  # a TrueType Noto build, if any
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),  # fonts-noto-cjk (CFF: skipped)
)
FALLBACK_FONT = "STSong-Light"

REPORTLAB_LOCK = threading.RLock()

_CONTRACT_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


@dataclass(frozen=True)
class FontChoice:
    name: str  # the reportlab font name to use
    path: str | None  # None for the non-embedded fallback
    embedded: bool


@dataclass(frozen=True)
class RenderedPdf:
    pdf: bytes
    sha256: str
    version: str
    template: str
    variant: str | None
    contract_ref: str
    font_embedded: bool


_fonts: dict[tuple, FontChoice] = {}
_fallback_warned = False


def reset_font_cache() -> None:
    """Forget resolved fonts and the one-warning flag (for tests)."""
    global _fallback_warned
    with REPORTLAB_LOCK:
        _fonts.clear()
        _fallback_warned = False


def _try_ttf(path: str, index: int) -> FontChoice | None:
    if not os.path.isfile(path):
        return None
    key = f"{os.path.realpath(path)}#{index}".encode()
    name = "CJK-" + hashlib.sha1(key, usedforsecurity=False).hexdigest()[:10]
    try:
        pdfmetrics.getFont(name)
        return FontChoice(name, path, True)
    except KeyError:
        pass
    try:
        font = TTFont(name, path, subfontIndex=index)
    except Exception as exc:  # TTFError for CFF outlines, bad files, unknown face index
        log.debug("CJK font %s#%d unusable: %s", path, index, exc)
        return None
    if not all(ord(ch) in font.face.charToGlyph for ch in "合同签署账户"):
        log.debug("font %s#%d has no Chinese glyphs", path, index)
        return None
    pdfmetrics.registerFont(font)
    return FontChoice(name, path, True)


def resolve_font(
    font_path: str | None = None,
    search_paths: Sequence[tuple[str, int]] | None = None,
    *,
    warn: bool = True,
) -> FontChoice:
    """The CJK font to render with. ``search_paths=()`` disables the search (tests). A process warns
    about a missing or unusable font once; ``warn=False`` spends that warning silently, for a caller
    that reports the problem itself (``font_problem``)."""
    global _fallback_warned
    env_index = os.environ.get("CJK_FONT_INDEX", "0")
    explicit = font_path or os.environ.get("CJK_FONT_PATH") or None
    search = tuple(FONT_SEARCH_PATHS if search_paths is None else search_paths)
    key = (explicit, env_index, search)
    with REPORTLAB_LOCK:
        if key in _fonts:
            return _fonts[key]
        choice = None
        if explicit:
            choice = _try_ttf(explicit, int(env_index) if env_index.isdigit() else 0)
        for path, index in search:
            if choice:
                break
            choice = _try_ttf(path, index)
        if choice is None:
            try:
                pdfmetrics.getFont(FALLBACK_FONT)
            except KeyError:
                pdfmetrics.registerFont(UnicodeCIDFont(FALLBACK_FONT))
            choice = FontChoice(FALLBACK_FONT, None, False)
            if not _fallback_warned:
                _fallback_warned = True
                if warn:
                    log.warning(
                        "no usable CJK TrueType font (CJK_FONT_PATH=%r, searched %d paths); contracts use "
                        "the non-embedded %s font. Install fonts-wqy-microhei or set CJK_FONT_PATH.",
                        explicit,
                        len(search),
                        FALLBACK_FONT,
                    )
        elif explicit and choice.path != explicit and not _fallback_warned:
            _fallback_warned = True
            if warn:
                log.warning("CJK_FONT_PATH=%r is not a usable TrueType font; using %s", explicit, choice.path)
        _fonts[key] = choice
        return choice


# Fixed wording the renderer and the signer add around a template's own text.
CHROME_TEXT = "合同编号模板版本第页共" + "签署时间北京时间签署人证件号码意愿认证微信人脸核验电子签章证书主体序列号签章时间签名格式含可信时间戳签章后文件的任何改动均可被检测银行"


def font_problem(font_path: str | None, search_paths: Sequence[tuple[str, int]] | None = None) -> str | None:
    """Why contracts could not carry their font, or None when they can: no embeddable CJK TrueType
    font found, or one that lacks characters the templates print (they would render as blanks).
    The caller reports it: resolving the font here logs nothing, and renders later in this process do not
    warn again."""
    from .layout import BANK_LABEL, CUSTOMER_LABEL
    from .templates import fixed_text

    choice = resolve_font(font_path, search_paths, warn=False)
    if not choice.embedded:
        return (f"no embeddable CJK TrueType font (CJK_FONT_PATH={font_path!r}): contracts would use the "
                f"non-embedded {FALLBACK_FONT} and render blank in viewers without Chinese fonts. Install "
                "fonts-wqy-microhei (found by itself), or set CJK_FONT_PATH to a CJK TrueType font")
    if font_path and choice.path != font_path:
        return f"CJK_FONT_PATH={font_path!r} is not a usable TrueType CJK font"
    face = pdfmetrics.getFont(choice.name).face
    wanted = set(fixed_text() + CHROME_TEXT + CUSTOMER_LABEL + BANK_LABEL + DEFAULT_BANK_NAME)
    missing = sorted(ch for ch in wanted if not ch.isspace() and ord(ch) not in face.charToGlyph)
    if missing:
        return (f"the font {choice.path} lacks {len(missing)} character(s) the contract templates print: "
                f"{''.join(missing[:20])}")
    return None


class _ContractInfo(PDFInfo):
    """reportlab's Info dictionary plus our own keys (``/ContractRef`` …)."""

    def __init__(self) -> None:
        super().__init__()
        self.extra: dict[str, Any] = {}

    def format(self, document):
        d = {
            "Title": PDFString(self.title),
            "Author": PDFString(self.author),
            "Subject": PDFString(self.subject),
            "Keywords": PDFString(self.keywords),
            "Creator": PDFString(self.creator),
            "Producer": PDFString(self.producer),
            "Trapped": PDFName(self.trapped),
        }
        d["CreationDate"] = d["ModDate"] = PDFDate(ts=document._timeStamp, dateFormatter=self._dateFormatter)
        for key, value in self.extra.items():
            d[key] = PDFArray(value) if isinstance(value, list) else PDFString(value)
        return PDFDictionary(d).format(document)


def _canvas_class(font: str, footer: str, info: dict[str, Any], header: tuple[str, str]):
    class ContractCanvas(Canvas):
        """Defers pages so the footer can say "page i of n"."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._doc.info = _ContractInfo()
            self._doc.info.extra.update(info)
            self._pages: list[dict] = []

        def showPage(self):
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            for i, state in enumerate(self._pages, 1):
                self.__dict__.update(state)
                self._decorate(i, total)
                Canvas.showPage(self)
            Canvas.save(self)

        def _decorate(self, page: int, total: int) -> None:
            width, height = self._pagesize
            self.saveState()
            self.setFillColor(colors.HexColor("#666666"))
            self.setStrokeColor(colors.HexColor("#999999"))
            self.setLineWidth(0.5)
            self.setFont(font, 8)
            self.drawString(20 * mm, height - 12 * mm, header[0])
            self.drawRightString(width - 20 * mm, height - 12 * mm, header[1])
            self.line(20 * mm, height - 13.5 * mm, width - 20 * mm, height - 13.5 * mm)
            self.line(20 * mm, 15.5 * mm, width - 20 * mm, 15.5 * mm)
            self.setFont(font, 7.5)
            self.drawCentredString(width / 2, 11 * mm, f"{footer}　第 {page} 页 / 共 {total} 页")
            self.restoreState()

    return ContractCanvas


def _both_boxes(area: SignatureArea) -> tuple[tuple[Any, str], ...]:
    return (area.customer_box, CUSTOMER_LABEL), (area.bank_box, BANK_LABEL)


class _SignatureBlock(Flowable):
    """The empty signature area at the end of the document; records where it landed. ``boxes`` names
    the boxes outlined in it and their labels: a contract's two (the customer's and the bank's), a
    document the bank alone issues only the bank's."""

    def __init__(self, font: str, boxes: Callable[[SignatureArea], Iterable[tuple[Any, str]]] = _both_boxes) -> None:
        super().__init__()
        self.font = font
        self.boxes = boxes

    def wrap(self, avail_width, avail_height):
        self.width = avail_width
        return avail_width, AREA_HEIGHT

    def draw(self):
        c = self.canv
        x0, y0 = c.absolutePosition(0, 0)
        area = SignatureArea(c.getPageNumber() - 1, x0, y0, self.width, AREA_HEIGHT)
        c._doc.info.extra["SignatureArea"] = area.as_list()
        c.saveState()
        c.setStrokeColor(colors.HexColor("#9a9a9a"))
        c.setLineWidth(0.6)
        c.setDash(3, 2)
        c.setFillColor(colors.HexColor("#333333"))
        c.setFont(self.font, 9.5)
        for box, label in self.boxes(area):
            bx, by = box.x - x0, box.y - y0
            c.rect(bx, by, box.w, box.h, stroke=1, fill=0)
            c.drawString(bx + PADDING + 2, by + box.h - LABEL_HEIGHT + 5, label)
        c.restoreState()


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=font, fontSize=10, leading=15.5, wordWrap="CJK")
    return {
        "title": ParagraphStyle("title", parent=base, fontSize=16, leading=22, alignment=TA_CENTER,
                                spaceAfter=4),
        "subtitle": ParagraphStyle("subtitle", parent=base, fontSize=8.5, leading=12, alignment=TA_CENTER,
                                   textColor=colors.HexColor("#555555"), spaceAfter=10),
        "party": ParagraphStyle("party", parent=base, fontSize=10, leading=15),
        "heading": ParagraphStyle("heading", parent=base, fontSize=11, leading=16, spaceBefore=7,
                                  spaceAfter=2),
        "clause": ParagraphStyle("clause", parent=base, firstLineIndent=0, spaceAfter=2),
        "note": ParagraphStyle("note", parent=base, fontSize=8.5, leading=13,
                               textColor=colors.HexColor("#555555"), spaceBefore=6),
    }


def render_contract(
    template_code: str,
    context: Mapping[str, Any],
    *,
    variant: str | None = None,
    contract_ref: str,
    font_path: str | None = None,
    font_search_paths: Sequence[tuple[str, int]] | None = None,
) -> RenderedPdf:
    """Render ``template_code`` for ``context``. Raises ``TemplateNotFound`` / ``ContractContextInvalid``."""
    if not _CONTRACT_REF_RE.fullmatch(contract_ref or ""):
        raise ValueError(f"contract_ref must match {_CONTRACT_REF_RE.pattern}")
    template = get_template(template_code)
    variant = template.resolve_variant(variant, context)
    paragraphs: list[Para] = template.paragraphs(context, variant)
    title = template.title_for(variant)
    bank_name = str(context.get("bank_name") or "") or None
    template_label = template.code + (f"/{variant}" if variant else "")

    font = resolve_font(font_path, font_search_paths)
    styles = _styles(font.name)
    story: list[Flowable] = [
        Paragraph(escape(title), styles["title"]),
        Paragraph(escape(f"合同编号：{contract_ref}　　模板：{template_label}　版本：{template.version}"),
                  styles["subtitle"]),
    ]
    previous = None
    for para in paragraphs:
        if previous == "party" and para.kind != "party":
            story.append(Spacer(1, 8))
        story.append(Paragraph(escape(para.text), styles[para.kind]))
        previous = para.kind
    story += [Spacer(1, 14), _SignatureBlock(font.name)]

    info = {
        "ContractRef": contract_ref,
        "ContractTemplate": template.code,
        "ContractTemplateVersion": template.version,
    }
    if variant:
        info["ContractVariant"] = variant
    footer = f"合同编号 {contract_ref}｜{template_label} 版本 {template.version}"
    canvas_class = _canvas_class(font.name, footer, info, (bank_name or DEFAULT_BANK_NAME, title))
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        title=title,
        author=bank_name or DEFAULT_BANK_NAME,
        subject=f"{template_label} {template.version} {contract_ref}",
        keywords=f"contract_ref={contract_ref}; template={template.code}; variant={variant or ''}; "
        f"version={template.version}",
        creator="openbank-mp esign",
        initialFontName=font.name,
        invariant=1,
        pageCompression=1,
    )
    with REPORTLAB_LOCK:
        doc.build(story, canvasmaker=canvas_class)
    data = buf.getvalue()
    return RenderedPdf(
        pdf=data,
        sha256=hashlib.sha256(data).hexdigest(),
        version=template.version,
        template=template.code,
        variant=variant,
        contract_ref=contract_ref,
        font_embedded=font.embedded,
    )


async def render_contract_async(template_code: str, context: Mapping[str, Any], **kwargs) -> RenderedPdf:
    """``render_contract`` in a worker thread: it takes tens of milliseconds of CPU."""
    return await asyncio.to_thread(render_contract, template_code, context, **kwargs)
