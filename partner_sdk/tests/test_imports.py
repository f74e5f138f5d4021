"""The SDK is handed to partners on its own: it must import nothing of the bank's server."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SDK = Path(__file__).resolve().parents[1]
PACKAGE = SDK / "openbank_partner"
SERVER = {"app", "core", "services", "handlers", "models", "sandbox", "tests", "integrations", "migrations"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(level, top-level name) for every import in a file; level > 0 is a relative import."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, (node.module or "").split(".")[0]))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "import_module", "__import__"):
            raise AssertionError(f"{path.name}: dynamic import")
    return found


def test_package_imports_only_the_standard_library_and_httpx() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 7
    for path in files:
        for level, name in imported_modules(path):
            if level:
                continue  # within openbank_partner
            assert name in sys.stdlib_module_names or name == "httpx", f"{path.name} imports {name}"
            assert name not in SERVER


def test_tests_import_nothing_of_the_server() -> None:
    for path in sorted((SDK / "tests").glob("*.py")):
        for _, name in imported_modules(path):
            assert name not in SERVER, f"{path.name} imports {name}"


def test_declared_dependencies() -> None:
    text = (SDK / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dependencies = ["httpx==0.28.1"]' in text
    assert 'name = "openbank-partner-sdk"' in text
