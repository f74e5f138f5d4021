"""The account-class rules, one versioned table: what the bank enforces and what the agreement states.

Sources (docs/domain.md): PBOC 银发〔2015〕392号 (remote channels open Class II/III; Class II needs a
same-name Class I debit or credit card), 〔2016〕302号 (at most 5 Class II and 5 Class III per person
per bank "in principle"; the minimum age is the bank's own rule, no PBOC one), 2016 bank notices (Class II outflow ¥10,000/day, ¥200,000/year, transfers to
and from the bound account outside the cap), 〔2018〕16号 (Class III balance ≤ ¥2,000 at all times, outflow
≤ ¥2,000/day and ≤ ¥50,000/year, ID to be collected once a person's Class III in+out reaches ¥50,000).

The account agreement is rendered from this table (``services.esign.templates``), so the contract can
never state other limits than the code enforces. Changing a value changes the agreement's wording:
bump ``RULES_VERSION`` and the agreement template's version together.
"""

from __future__ import annotations

from dataclasses import dataclass

RULES_VERSION = "2026.11-1"


@dataclass(frozen=True)
class ClassRules:
    account_class: str  # "II" | "III"
    label: str  # as printed: "Ⅱ类"
    daily_outflow_fen: int  # consumption, payments, transfers to non-bound parties, per China day
    yearly_outflow_fen: int  # the same, per China calendar year
    balance_cap_fen: int | None  # at every moment; None: no cap
    max_accounts_per_person: int  # of this class, at this bank, by ID number
    min_age_years: int  # on the day of opening, from the ID number's birth date


RULES: dict[str, ClassRules] = {
    "II": ClassRules("II", "Ⅱ类", 1_000_000, 20_000_000, None, 5, 16),
    "III": ClassRules("III", "Ⅲ类", 200_000, 5_000_000, 200_000, 5, 16),
}
ACCOUNT_CLASSES = tuple(RULES)

# Once a person's Class III accounts have moved this much in and out in total, their ID must be
# collected (again) within 7 days; the bank flags the person.
CLASS_III_ID_COLLECTION_FEN = 5_000_000


def rules_for(account_class: str) -> ClassRules:
    return RULES[account_class]


def youngest_opening_age() -> int:
    """The ID card step refuses anyone younger than every class allows (``UNDER_AGE``); opening then holds
    each application to its own class's ``min_age_years``. The one threshold is the table's."""
    return min(r.min_age_years for r in RULES.values())
