"""Account numbers: 19 digits, the bank's prefix from config, random digits, and a Luhn check digit
(the same check digit bank cards carry, so a mistyped number is caught before it reaches anything)."""

from __future__ import annotations

import secrets

from stdnum import luhn

LENGTH = 19


def new_account_number(prefix: str) -> str:
    if not prefix.isdigit() or not 1 <= len(prefix) <= 10:
        raise ValueError("the account number prefix must be 1 to 10 digits")
    body = prefix + "".join(secrets.choice("0123456789") for _ in range(LENGTH - 1 - len(prefix)))
    return body + luhn.calc_check_digit(body)


def is_account_number(value: str) -> bool:
    return len(value) == LENGTH and value.isdigit() and luhn.is_valid(value)
