"""What each staff role may do: the one table. A page or action names its permission; nothing else in
the code compares roles.

Sensitive actions (unfreeze, large refunds and approvals, rule sets in force, partner scopes and secrets)
will also need a second person (maker-checker, issue #23): the permission here says who may propose or
approve, the proposal service says that it takes two.
"""

from __future__ import annotations

from models.enums import StaffRole

VIEWER, REVIEWER, OPERATOR, RISK, ADMIN = (StaffRole.VIEWER, StaffRole.REVIEWER, StaffRole.OPERATOR,
                                           StaffRole.RISK, StaffRole.ADMIN)
EVERYONE = frozenset(StaffRole)

# permission -> the roles that hold it
PERMISSIONS: dict[str, frozenset[StaffRole]] = {
    "dashboard.view": EVERYONE,
    "customers.view": EVERYONE,  # masked; a full value needs a reason (and counts against an allowance)
    "customers.reveal": frozenset({OPERATOR, RISK, ADMIN}),
    "queues.view": frozenset({REVIEWER, OPERATOR, RISK, ADMIN}),
    "queues.decide": frozenset({REVIEWER, RISK}),  # held top-ups and withdrawals, risk-refused debits
    "proposals.view": frozenset({REVIEWER, OPERATOR, RISK, ADMIN}),  # what waits for a second person
    "accounts.view": frozenset({REVIEWER, OPERATOR, RISK, ADMIN}),
    "accounts.freeze": frozenset({OPERATOR, RISK}),
    "accounts.unfreeze": frozenset({OPERATOR, RISK}),  # under maker-checker: two different members
    "payments.view": frozenset({REVIEWER, OPERATOR, ADMIN}),
    "payments.refund": frozenset({OPERATOR}),
    "payments.resolve": frozenset({OPERATOR, REVIEWER}),  # a daily-bill mismatch's resolution note
    "partners.view": frozenset({REVIEWER, OPERATOR, ADMIN}),
    "partners.manage": frozenset({OPERATOR, ADMIN}),
    "risk.view": frozenset({REVIEWER, RISK, ADMIN}),
    "risk.rules": frozenset({RISK}),
    "risk.lists": frozenset({RISK}),
    "audit.view": frozenset({REVIEWER, RISK, ADMIN}),
    "staff.manage": frozenset({ADMIN}),
}


def allows(role: StaffRole | str, permission: str) -> bool:
    """Whether ``role`` holds ``permission``; an unknown permission is a programming error (KeyError),
    never a silent no."""
    return StaffRole(role) in PERMISSIONS[permission]


def of(role: StaffRole | str) -> list[str]:
    """Every permission ``role`` holds, in the table's order (shown on the console's landing page)."""
    return [name for name, roles in PERMISSIONS.items() if StaffRole(role) in roles]
