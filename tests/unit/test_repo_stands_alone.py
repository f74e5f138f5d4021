"""The repository stands alone: nothing in it points outside it, and the docs it links exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    files = [ROOT / f for f in out if not f.endswith((".png", ".jpg", ".pdf", ".ttc", ".ttf"))]
    return [f for f in files if f.is_file()]


def test_nothing_points_outside_the_repository():
    offenders = []
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="ignore")
        if "../shared" in text or re.search(r"(?<![\w/])reference/[a-z-]+\.md", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [] or offenders == ["tests/unit/test_repo_stands_alone.py"], offenders


def test_every_relative_link_in_the_docs_exists():
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "miniprogram_stub" / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+)\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to missing {target}"
