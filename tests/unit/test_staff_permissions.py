"""The staff roles' permission table (services/staff/permissions.py) and the lockout's backoff."""

from __future__ import annotations

import pytest

from core.settings import Settings
from models.enums import StaffRole
from services.staff import permissions
from services.staff.login import lockout_s


def test_every_role_sees_the_dashboard_and_only_admins_manage_staff():
    for role in StaffRole:
        assert permissions.allows(role, "dashboard.view")
    assert [r for r in StaffRole if permissions.allows(r, "staff.manage")] == [StaffRole.ADMIN]
    assert not permissions.allows("viewer", "queues.decide") and permissions.allows("reviewer", "queues.decide")


def test_an_unknown_permission_is_an_error_not_a_no():
    with pytest.raises(KeyError):
        permissions.allows("admin", "everything")
    with pytest.raises(ValueError):
        permissions.allows("root", "dashboard.view")


def test_every_permission_names_known_roles_and_someone_holds_it():
    for name, roles in permissions.PERMISSIONS.items():
        assert roles and roles <= set(StaffRole), name


def test_the_lockout_doubles_from_the_threshold_up_to_its_cap():
    s = Settings(admin_lockout_after=5, admin_lockout_base_s=60, admin_lockout_max_s=600)
    assert [lockout_s(s, n) for n in range(1, 10)] == [0, 0, 0, 0, 60, 120, 240, 480, 600]
    assert lockout_s(s, 10_000) == 600
