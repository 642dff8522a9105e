from __future__ import annotations

import pytest

from owlat.app.lib.errors import AppError
from owlat.app.lib.permissions import PERMISSIONS, has_permission, is_admin_role, require_permission


def test_admin_roles() -> None:
    assert is_admin_role("owner") and is_admin_role("admin")
    assert not is_admin_role("editor") and not is_admin_role(None) and not is_admin_role("x")


def test_editors_draft_but_do_not_send_campaigns() -> None:
    assert has_permission("editor", "campaigns:manage")
    assert not has_permission("editor", "campaigns:send")
    assert not has_permission("editor", "campaigns:schedule")
    assert has_permission("admin", "campaigns:send")
    assert has_permission("editor", "emails:test") and has_permission("editor", "contacts:annotate")
    assert not has_permission("editor", "contacts:manage")


def test_only_owners_delete_organizations() -> None:
    assert [
        r for r in ("owner", "admin", "editor") if has_permission(r, "organization:delete")
    ] == ["owner"]


def test_require_permission_errors() -> None:
    require_permission("owner", "organization:delete")
    with pytest.raises(AppError, match="^Admin access required$"):
        require_permission("editor", "admin")
    with pytest.raises(AppError, match="^Admin access required$"):
        require_permission("editor", "settings:manage")
    with pytest.raises(AppError, match="^Owner access required$"):
        require_permission("admin", "organization:delete")
    with pytest.raises(ValueError, match="Unknown permission 'nope'"):
        require_permission("owner", "nope")
    assert all(roles <= {"owner", "admin", "editor"} for roles in PERMISSIONS.values())
