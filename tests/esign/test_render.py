import io
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from services.esign import render
from services.esign.render import FONT_SEARCH_PATHS, render_contract, reset_font_cache
from services.esign.templates import TEMPLATES

from .helpers import CONTEXT

REPO = Path(__file__).resolve().parents[2]
CJK_FONT = next((p for p, _ in FONT_SEARCH_PATHS if Path(p).is_file()), None)
needs_cjk_font = pytest.mark.skipif(
    CJK_FONT is None, reason="no CJK TrueType font installed (fonts-wqy-microhei)"
)

CASES = [
    ("account_agreement", "II"),
    ("account_agreement", "III"),
    ("etc_autodebit", None),
    ("privacy_consent", None),
]


def info_of(pdf: bytes) -> dict:
    reader = PdfFileReader(io.BytesIO(pdf))
    info = reader.trailer_view["/Info"]
    return {k: (str(v) if not isinstance(v, list) else v) for k, v in info.items()}, reader


def test_cases_cover_every_template_and_variant():
    assert {(c, v) for c, v in CASES} == {
        (t.code, v) for t in TEMPLATES.values() for v in (list(t.variants) or [None])
    }


@pytest.mark.parametrize("code,variant", CASES)
def test_every_template_renders_with_its_identity_in_the_metadata(code, variant):
    ref = f"C-{code}-{variant or 'x'}"
    out = render_contract(code, CONTEXT, variant=variant, contract_ref=ref)
    assert out.pdf.startswith(b"%PDF-1.")
    assert out.pdf.rstrip().endswith(b"%%EOF")
    info, reader = info_of(out.pdf)
    assert info["/ContractRef"] == ref
    assert info["/ContractTemplate"] == code
    assert info["/ContractTemplateVersion"] == out.version == TEMPLATES[code].version
    assert info.get("/ContractVariant") == variant
    assert ref in info["/Keywords"] and ref in info["/Subject"]
    assert info["/Title"] == TEMPLATES[code].title_for(variant)
    # The signature area is reserved on the last page.
    pages = int(reader.root["/Pages"]["/Count"])
    area = info["/SignatureArea"]
    assert int(area[0]) == pages - 1 and float(area[4]) == render.AREA_HEIGHT
    assert 1 <= pages <= 3


@needs_cjk_font
@pytest.mark.parametrize("code,variant", CASES)
def test_cjk_font_subset_is_embedded(code, variant):
    out = render_contract(code, CONTEXT, variant=variant, contract_ref="C-1")
    assert out.font_embedded
    assert b"/FontFile2" in out.pdf
    assert b"/FontDescriptor" in out.pdf
    assert b"STSong-Light" not in out.pdf


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
@needs_cjk_font
def test_every_page_footer_names_the_contract(tmp_path):
    out = render_contract("account_agreement", CONTEXT, contract_ref="C-20261120-0042")
    path = tmp_path / "c.pdf"
    path.write_bytes(out.pdf)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    pages = [p for p in text.split("\f") if p.strip()]
    assert len(pages) >= 2
    for i, page in enumerate(pages, 1):
        assert "合同编号 C-20261120-0042" in page
        assert f"account_agreement/II 版本 {TEMPLATES['account_agreement'].version}" in page
        assert f"第{i}页/共{len(pages)}页" in page.replace(" ", "")  # pdftotext drops some spaces
    assert "个人Ⅱ类银行结算账户服务协议" in pages[0]
    assert "张*丰" in pages[0] and "张三丰" not in text


def test_rendering_is_deterministic():
    a = render_contract("etc_autodebit", CONTEXT, contract_ref="C-7")
    b = render_contract("etc_autodebit", dict(CONTEXT), contract_ref="C-7")
    assert a.pdf == b.pdf and a.sha256 == b.sha256
    c = render_contract("etc_autodebit", {**CONTEXT, "plate_number": "京A12346"}, contract_ref="C-7")
    d = render_contract("etc_autodebit", CONTEXT, contract_ref="C-8")
    assert len({a.sha256, c.sha256, d.sha256}) == 3


def test_rendering_is_deterministic_across_processes():
    here = render_contract("account_agreement", CONTEXT, variant="III", contract_ref="C-9").sha256
    code = (
        "from services.esign.render import render_contract\n"
        "from tests.esign.helpers import CONTEXT\n"
        "print(render_contract('account_agreement', CONTEXT, variant='III', contract_ref='C-9').sha256)\n"
    )
    there = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here


def test_bad_contract_ref_is_a_programming_error():
    with pytest.raises(ValueError):
        render_contract("privacy_consent", CONTEXT, contract_ref="")
    with pytest.raises(ValueError):
        render_contract("privacy_consent", CONTEXT, contract_ref="a) /Evil (")


@pytest.fixture
def fresh_fonts():
    reset_font_cache()
    yield
    reset_font_cache()


def test_without_a_cjk_font_rendering_falls_back_and_warns_once(monkeypatch, caplog, fresh_fonts, tmp_path):
    monkeypatch.setenv("CJK_FONT_PATH", str(tmp_path / "no-such-font.ttf"))
    caplog.set_level(logging.WARNING, logger="services.esign.render")
    outs = [
        render_contract(code, CONTEXT, variant=variant, contract_ref="C-1", font_search_paths=())
        for code, variant in CASES
    ]
    warnings = [
        r for r in caplog.records if r.name == "services.esign.render" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "STSong-Light" in warnings[0].getMessage()
    for out in outs:
        assert out.pdf.startswith(b"%PDF-")
        assert not out.font_embedded
        assert b"/FontFile2" not in out.pdf
        assert b"STSong-Light" in out.pdf
        assert info_of(out.pdf)[0]["/ContractRef"] == "C-1"


def test_a_file_that_is_not_a_font_falls_back_too(monkeypatch, caplog, fresh_fonts, tmp_path):
    bogus = tmp_path / "bogus.ttf"
    bogus.write_bytes(b"not a font at all")
    monkeypatch.setenv("CJK_FONT_PATH", str(bogus))
    out = render_contract("privacy_consent", CONTEXT, contract_ref="C-1", font_search_paths=())
    assert not out.font_embedded


@needs_cjk_font
def test_cjk_font_path_from_the_environment(monkeypatch, caplog, fresh_fonts):
    monkeypatch.setenv("CJK_FONT_PATH", CJK_FONT)
    caplog.set_level(logging.WARNING, logger="services.esign.render")
    out = render_contract("privacy_consent", CONTEXT, contract_ref="C-1", font_search_paths=())
    assert out.font_embedded and b"/FontFile2" in out.pdf
    assert not caplog.records


async def test_async_wrapper_renders_the_same_bytes():
    from services.esign.render import render_contract_async

    out = await render_contract_async("privacy_consent", CONTEXT, contract_ref="C-ASYNC")
    assert out.sha256 == render_contract("privacy_consent", CONTEXT, contract_ref="C-ASYNC").sha256


def test_a_font_without_chinese_glyphs_is_not_used(monkeypatch, fresh_fonts):
    latin = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    if not Path(latin).is_file():
        pytest.skip("DejaVu not installed")
    monkeypatch.setenv("CJK_FONT_PATH", latin)
    out = render_contract("privacy_consent", CONTEXT, contract_ref="C-1", font_search_paths=())
    assert not out.font_embedded and b"DejaVu" not in out.pdf
