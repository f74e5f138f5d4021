"""Render an account statement to PDF, ready for the bank's seal (``signing.seal_document``).

Pure and synchronous like ``render``: the caller (``services.accounts.statements``) hands over text
already formatted (amounts by ``core.money.yuan``, times in China Standard Time, the account number
masked), so this module decides layout only. The same font, page chrome and signature-area mechanism as
the contracts: the statement's reference goes into the Info dictionary (``/StatementRef``,
``/StatementAccount``, ``/StatementMonth``, ``/DocumentKind``) and the footer of every page, and the
signature area at the end carries only the bank's box.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from .layout import SignatureArea
from .render import REPORTLAB_LOCK, _canvas_class, _SignatureBlock, _styles, resolve_font

DOCUMENT_KIND = "account_statement"
SEAL_LABEL = "银行电子签章："
COLUMNS = ("记账时间（北京时间）", "摘要", "对方", "收入（元）", "支出（元）", "余额（元）", "流水号")


@dataclass(frozen=True)
class StatementDocument:
    """Everything printed on a statement, as text."""

    statement_ref: str
    bank_name: str
    holder_name: str
    account_masked: str
    account_class: str
    month: str  # YYYY-MM
    period: str  # "2026-01-01 至 2026-01-31"
    opening: str
    closing: str
    total_in: str
    total_out: str
    issued_at: str
    rows: Sequence[tuple[str, str, str, str, str, str, str]]  # as COLUMNS


def _bank_box_only(area: SignatureArea) -> tuple[tuple[object, str], ...]:
    """A statement is the bank's alone: only the bank's box is outlined, for its seal."""
    return ((area.bank_box, SEAL_LABEL),)


def render_statement(doc: StatementDocument, *, font_path: str | None = None, font_search_paths=None) -> bytes:
    font = resolve_font(font_path, font_search_paths)
    styles = _styles(font.name)
    cell = styles["clause"].clone("cell", fontSize=7.5, leading=9.5)
    cell_right = cell.clone("cell_right", alignment=2)
    title = "个人账户对账单"
    story: list[Flowable] = [
        Paragraph(escape(title), styles["title"]),
        Paragraph(escape(f"对账单编号：{doc.statement_ref}　　账单期间：{doc.period}（北京时间）"), styles["subtitle"]),
    ]
    for line in (f"户名：{doc.holder_name}", f"账号：{doc.account_masked}　　账户类别：{doc.account_class}类户",
                 f"期初余额：{doc.opening} 元　　期末余额：{doc.closing} 元",
                 f"本期收入：{doc.total_in} 元　　本期支出：{doc.total_out} 元　　笔数：{len(doc.rows)}"):
        story.append(Paragraph(escape(line), styles["party"]))
    story.append(Spacer(1, 8))
    if doc.rows:
        data = [[Paragraph(escape(h), cell) for h in COLUMNS]]
        for row in doc.rows:
            data.append([Paragraph(escape(v), cell_right if i in (3, 4, 5) else cell) for i, v in enumerate(row)])
        table = Table(data, repeatRows=1, colWidths=[30 * mm, 20 * mm, 30 * mm, 20 * mm, 20 * mm, 22 * mm, 28 * mm])
        table.setStyle(TableStyle([
            ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#b0b0b0")),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ]))
        story.append(table)
    else:
        story.append(Paragraph("本期无交易。", styles["clause"]))
    story += [
        Paragraph(escape(f"出具时间：{doc.issued_at}（北京时间）。本对账单由银行电子签章，签章后任何改动均可被检测；"
                         "可通过银行的验签服务或任一 PAdES 验证工具核验。"), styles["note"]),
        Spacer(1, 14),
        _SignatureBlock(font.name, _bank_box_only),
    ]
    info = {"DocumentKind": DOCUMENT_KIND, "StatementRef": doc.statement_ref, "StatementAccount": doc.account_masked,
            "StatementMonth": doc.month}
    footer = f"对账单编号 {doc.statement_ref}｜{doc.account_masked}｜{doc.month}"
    canvas_class = _canvas_class(font.name, footer, info, (doc.bank_name, title))
    buf = io.BytesIO()
    template = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=20 * mm, bottomMargin=20 * mm,
        title=title, author=doc.bank_name, subject=f"{title} {doc.statement_ref}",
        keywords=f"statement_ref={doc.statement_ref}; month={doc.month}", creator="openbank-mp esign",
        initialFontName=font.name, invariant=1, pageCompression=1,
    )
    with REPORTLAB_LOCK:
        template.build(story, canvasmaker=canvas_class)
    return buf.getvalue()
