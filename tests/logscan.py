"""Personal data in the logs the whole suite produced: none may appear unmasked.

What is searched: every log line the in-process test server wrote (a copy of its records, through the
same redaction filter and JSON formatter as its real handler: ``tests/conftest.py`` adds it), and every
``*.log`` file under the suite's temporary directory (each server process, worker and command the tests
started writes one there). What counts as personal data:

* an ID number: 18 characters whose check character holds (GB 11643);
* a mainland mobile number: 11 digits from 13x-19x, alone (not inside a longer run of digits or letters);
* a bank account number of ours (``623099`` + 13 digits) or a card number the tests made (bank cards and
  ETC cards: ``record`` keeps each one the helpers generate), whole;
* a name from the tests' identity data.

``pytest_sessionfinish`` in ``tests/conftest.py`` fails the run when anything is found, naming the file,
the line and the kind (never the value itself, which would put it in CI's log).
"""

from __future__ import annotations

import re
from pathlib import Path

from stdnum.cn import ric
from stdnum import luhn

from tests.identity_data import CHINESE_NAMES

_MADE: set[str] = set()
_ID_RE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dX](?![0-9A-Za-z])")
_PHONE_RE = re.compile(r"(?<![0-9A-Za-z._])1[3-9]\d{9}(?![0-9A-Za-z]|\.\d)")
_ACCOUNT_RE = re.compile(r"(?<![0-9A-Za-z])623099\d{13}(?![0-9A-Za-z])")
_DIGITS_RE = re.compile(r"(?<![0-9A-Za-z])\d{16,20}(?![0-9A-Za-z])")


def record(value: str) -> str:
    """Note a card number a test made, so the scan looks for it; returns it."""
    _MADE.add(value)
    return value


def kinds_in(line: str) -> list[str]:
    found = []
    if any(ric.is_valid(m) for m in _ID_RE.findall(line)):
        found.append("ID number")
    if _PHONE_RE.search(line):
        found.append("phone number")
    if any(luhn.is_valid(m) for m in _ACCOUNT_RE.findall(line)):
        found.append("account number")
    if any(m in _MADE for m in _DIGITS_RE.findall(line)):
        found.append("card number")
    if any(name in line for name in CHINESE_NAMES):
        found.append("name")
    return found


def scan(paths: list[Path]) -> tuple[list[str], int]:
    """``file:line: kinds`` for every line with personal data in it, and how many lines were read."""
    findings, lines = [], 0
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            lines += 1
            kinds = kinds_in(line)
            if kinds:
                findings.append(f"{path}:{n}: {', '.join(kinds)}")
    return findings, lines
