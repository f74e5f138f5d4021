"""The mini-program's WXML and WXSS compiled by Tencent's own compilers, as WeChat DevTools does before a preview
or an upload.

The strict renderer of the Node tests (``miniprogram_stub/test/wxml.js``) is ours; this checks the pages against
WeChat's: ``miniprogram-compiler`` from the npm registry (pinned in ``tests/e2e/miniprogram_compiler/package.json``,
its lock committed) wraps the Linux builds of ``wcc`` (WXML) and ``wcsc`` (WXSS). It is installed with ``npm ci``
into ``tests/e2e/miniprogram_compiler/node_modules/`` (git-ignored) on first use; ``compile.js`` there compiles
app.wxss and every page of app.json on its own and the test fails naming each page that does not compile, with the
compiler's message. Skipped only when node or npm is missing, and never in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.servers import ROOT

STUB = ROOT / "miniprogram_stub"
COMPILER_DIR = ROOT / "tests" / "e2e" / "miniprogram_compiler"

pytestmark = pytest.mark.slow


def _compiler_version() -> str:
    return json.loads((COMPILER_DIR / "package.json").read_text())["dependencies"]["miniprogram-compiler"]


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = "node" if node is None else "npm"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is not on PATH in CI: the mini-program must be compiled there")
        pytest.skip(f"{missing} is not on PATH")
    installed = COMPILER_DIR / "node_modules" / "miniprogram-compiler" / "package.json"
    if not installed.is_file() or json.loads(installed.read_text())["version"] != _compiler_version():
        # npm ci: exactly the committed lock (integrity-checked), nothing else
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=COMPILER_DIR,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"npm ci of miniprogram-compiler failed:\n{done.stdout}\n{done.stderr}"
    return node


def compile_miniprogram(node: str, project: Path) -> list[dict]:
    """Each file's result from Tencent's compilers: ``{file, page, kind, ok, message}``."""
    done = subprocess.run([node, str(COMPILER_DIR / "compile.js"), str(project)], cwd=COMPILER_DIR,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"compile.js failed to run:\n{done.stderr}"
    return json.loads(done.stdout)["results"]


def failures(results: list[dict]) -> str:
    return "\n".join(f"{r['page']} ({r['file']}): {r['message']}" for r in results if not r["ok"])


def test_every_page_compiles_with_wechats_compiler(node: str) -> None:
    # Given the mini-program as it is shipped
    pages = json.loads((STUB / "app.json").read_text())["pages"]

    # When Tencent's wcc and wcsc compile it
    results = compile_miniprogram(node, STUB)

    # Then app.wxss and every page's WXML and WXSS compile (and the compiled WXML renders)
    if failures(results):
        pytest.fail("pages that WeChat's compilers refuse:\n" + failures(results), pytrace=False)
    compiled = {r["file"] for r in results}
    expected = {"app.wxss"} | {f"{p}.wxml" for p in pages} | {f"{p}.wxss" for p in pages}
    assert compiled == expected
    # and every page on disk is one of app.json's (none left out of the compile)
    on_disk = {str(f.relative_to(STUB).with_suffix("")) for f in STUB.glob("pages/**/*.wxml")}
    assert set(pages) == on_disk and len(pages) > 1


def _project(tmp_path: Path, wxml: str, wxss: str = ".ok { color: #1a7f37; }\n") -> Path:
    (tmp_path / "pages" / "demo").mkdir(parents=True)
    (tmp_path / "app.json").write_text(json.dumps({"pages": ["pages/demo/demo"]}))
    (tmp_path / "app.wxss").write_text("page { color: #222; }\n")
    (tmp_path / "pages" / "demo" / "demo.json").write_text("{}")
    (tmp_path / "pages" / "demo" / "demo.wxml").write_text(wxml)
    (tmp_path / "pages" / "demo" / "demo.wxss").write_text(wxss)
    return tmp_path


def test_the_helper_accepts_a_well_formed_page(node: str, tmp_path: Path) -> None:
    project = _project(tmp_path, '<view class="ok">{{ a + 1 }}</view>\n<button bindtap="onGo">下一步</button>\n')
    results = compile_miniprogram(node, project)
    assert [(r["file"], r["ok"]) for r in results] == [
        ("app.wxss", True), ("pages/demo/demo.wxml", True), ("pages/demo/demo.wxss", True)]


def test_the_helper_reports_malformed_wxml(node: str, tmp_path: Path) -> None:
    # Given a page whose <button> is closed by </view>: so the compile test above cannot pass vacuously
    project = _project(tmp_path, '<view>\n  <button bindtap="onGo">下一步</view>\n')

    results = compile_miniprogram(node, project)

    # Then the page is named, with wcc's own message (file:line:col)
    bad = [r for r in results if not r["ok"]]
    assert [(r["page"], r["file"]) for r in bad] == [("pages/demo/demo", "pages/demo/demo.wxml")]
    assert "pages/demo/demo.wxml:2:" in bad[0]["message"]
    assert "expect end-tag `button`" in bad[0]["message"]


def test_the_helper_reports_a_broken_binding(node: str, tmp_path: Path) -> None:
    project = _project(tmp_path, "<view>{{ amount + }}</view>\n")
    bad = [r for r in compile_miniprogram(node, project) if not r["ok"]]
    assert [r["file"] for r in bad] == ["pages/demo/demo.wxml"]
    assert "pages/demo/demo.wxml:1:" in bad[0]["message"]


def test_the_helper_reports_malformed_wxss(node: str, tmp_path: Path) -> None:
    project = _project(tmp_path, "<view>ok</view>\n", wxss=".amount { color: red;\n")
    bad = [r for r in compile_miniprogram(node, project) if not r["ok"]]
    assert [r["file"] for r in bad] == ["pages/demo/demo.wxss"]
    assert "demo.wxss(2:1)" in bad[0]["message"]
