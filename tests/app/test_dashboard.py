"""dashboard:viewer — the dashboard frame's user, organizations, active role and permissions;
dashboard:instance — whether the instance runs as `owlat dev`."""

from __future__ import annotations

from pathlib import Path

import pytest

from owlat.app.lib import instance
from owlat.runtime.application import Application
from tests.app.conftest import BASE_URL, FAST, owner_and_editor, signed_in, with_organization


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


async def test_signed_out_is_null_not_an_error(owlat: Application) -> None:
    assert (await owlat.run_query("dashboard:viewer", {})).value is None
    user = await signed_in(owlat, "gone@example.com")
    await owlat.run_mutation(
        "auth:deleteSession", {"userId": user.user_id, "sessionId": user.session_id}, internal=True
    )
    assert await user.query("dashboard:viewer") is None


async def test_without_an_organization(owlat: Application) -> None:
    user = await signed_in(owlat, "New@Example.com", "New User", verified=False)
    viewer = await user.query("dashboard:viewer")
    assert viewer == {
        "user": {
            "_id": user.user_id,
            "name": "New User",
            "email": "new@example.com",
            "emailVerified": False,
        },
        "organizations": [],
        "organization": None,
    }


async def test_roles_permissions_and_switching(owlat: Application) -> None:
    owner, editor, acme = await owner_and_editor(owlat)
    other = await with_organization(editor, "beta")  # the editor owns another, now active
    viewer = await editor.query("dashboard:viewer")
    assert [(o["slug"], o["role"]) for o in viewer["organizations"]] == [
        ("acme", "editor"),
        ("beta", "owner"),
    ]
    assert viewer["organization"]["_id"] == other
    assert "contacts:manage" in viewer["organization"]["permissions"]

    await editor.mutation("organizations:setActive", {"organizationId": acme})
    active = (await editor.query("dashboard:viewer"))["organization"]
    assert (active["_id"], active["slug"], active["role"]) == (acme, "acme", "editor")
    assert "contacts:manage" not in active["permissions"]
    assert "campaigns:send" not in active["permissions"]
    assert {"lists:manage", "contacts:annotate", "campaigns:manage"} <= set(active["permissions"])
    owners = (await owner.query("dashboard:viewer"))["organization"]["permissions"]
    assert {"contacts:manage", "campaigns:send", "organization:delete"} <= set(owners)

    # removed from the active organization: no active organization, no error
    await owner.mutation("members:remove", {"memberIdOrEmail": editor.email})
    viewer = await editor.query("dashboard:viewer")
    assert viewer["organization"] is None
    assert [o["slug"] for o in viewer["organizations"]] == ["beta"]


async def test_instance_says_whether_it_runs_as_owlat_dev(
    owlat: Application, tmp_path: Path
) -> None:
    assert (await owlat.run_query("dashboard:instance", {})).value == {"development": False}
    instance.configure(tmp_path, BASE_URL, **{**FAST, "development": True})
    assert (await owlat.run_query("dashboard:instance", {})).value == {"development": True}
