"""The layer rules of the design hold by a tool, not by care: ``lint-imports`` (import-linter, contracts in
``pyproject.toml``) passes on the repository, and fails on a copy of it where a handler imports a model
class. ``tests/mutants.py`` ("a handler imports a model class") makes the same edit to the real tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")  # the venv's, beside its python
# what the contracts' root packages are made of, and the contracts themselves
TREE = ("app", "handlers", "services", "models", "integrations", "core", "sandbox", "migrations",
        "partner_sdk/openbank_partner", "pyproject.toml")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # the packages are found from `root` (not from the editable install, which points at this checkout);
    # no cache, so that nothing is written into the tree and no stale graph answers
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def copy_of_the_tree(dest: Path) -> Path:
    for name in TREE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def test_the_layers_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    # every contract of the design is there, and checked
    for contract in ("app → handlers → services → models | integrations → core", "no model class",
                     "sandbox shares no code", "imports nothing of the sandbox", "partner SDK imports nothing"):
        assert contract in result.stdout, contract


def test_a_handler_importing_a_model_class_fails(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    handler = tree / "handlers" / "miniprogram" / "accounts.py"
    handler.write_text(handler.read_text(encoding="utf-8") + "\nfrom models.accounts import Account  # noqa\n",
                       encoding="utf-8")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "handlers is not allowed to import models" in result.stdout
    assert "handlers.miniprogram.accounts -> models.accounts" in result.stdout


def test_the_enums_are_what_handlers_may_import(tmp_path: Path) -> None:
    # and only them: the exception is one module, not the models package
    tree = copy_of_the_tree(tmp_path)
    handler = tree / "handlers" / "ops.py"
    handler.write_text(handler.read_text(encoding="utf-8") + "\nfrom models import MODEL_MODULES  # noqa\n",
                       encoding="utf-8")
    assert lint_imports(tree).returncode == 1


def test_the_sandbox_and_the_sdk_share_nothing_with_the_server(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    for path in ("sandbox/__init__.py", "partner_sdk/openbank_partner/errors.py", "services/context.py"):
        target = tree / path
        extra = "import sandbox  # noqa\n" if path.startswith("services") else "import core.errors  # noqa\n"
        target.write_text(target.read_text(encoding="utf-8") + "\n" + extra, encoding="utf-8")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "sandbox is not allowed to import core" in result.stdout
    assert "partner_sdk.openbank_partner is not allowed to import core" in result.stdout
    assert "services is not allowed to import sandbox" in result.stdout
