"""Every security-critical rule has a test that fails without it (``tests/mutants.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e.servers import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.skipif(bool(os.environ.get("TEST_DATABASE_URL")),
                    reason="the rules are not database-specific: run once, in the SQLite pass")
def test_every_mutant_of_a_security_rule_is_killed():
    result = subprocess.run([sys.executable, "tests/mutants.py"], cwd=ROOT, capture_output=True, text=True,
                            timeout=2700)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SURVIVED" not in result.stdout and "STALE" not in result.stdout

