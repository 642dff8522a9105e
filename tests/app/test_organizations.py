"""organizations:* — create, update, delete (cascade: test_organization_deletion.py), list
mine, set active, get full."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_query
from tests.app.conftest import Caller, signed_in, until_organization_deleted, with_organization


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


async def _count(owlat: Application, table: str) -> int:
    async def count(ctx: Any) -> int:
        return len(await ctx.db.query(table).collect())

    return int(await in_query(owlat, count))


async def _join(owner: Caller, member: Caller, role: str = "editor") -> None:
    invitation = await owner.mutation("invitations:invite", {"email": member.email, "role": role})
    await member.mutation("invitations:accept", {"invitationId": invitation["_id"]})


async def test_create_makes_the_creator_owner_and_active(owlat: Application) -> None:
    owner = await signed_in(owlat, "owner@example.com")
    created = await owner.mutation("organizations:create", {"name": " Acme ", "slug": "Acme-Mail"})
    assert (created["name"], created["slug"]) == ("Acme", "acme-mail")
    (member,) = created["members"]
    assert (member["userId"], member["role"]) == (owner.user_id, "owner")
    active = await owner.query("organizations:getActive")
    assert (active["_id"], active["role"]) == (created["_id"], "owner")
    other = await owner.mutation(
        "organizations:create",
        {"name": "Beta", "slug": "beta", "keepCurrentActiveOrganization": True},
    )
    assert (await owner.query("organizations:getActive"))["_id"] == created["_id"]
    mine = await owner.query("organizations:listMine")
    assert sorted(o["slug"] for o in mine) == ["acme-mail", "beta"]
    assert other["slug"] == "beta"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "", "slug": "ok"}, "Name must be 1 to 200 characters"),
        ({"name": "x" * 201, "slug": "ok"}, "Name must be 1 to 200 characters"),
        ({"name": "Ok", "slug": "-bad"}, "Slug must be 1 to 64 lower-case letters"),
        ({"name": "Ok", "slug": "has space"}, "Slug must be 1 to 64 lower-case letters"),
        ({"name": "Ok", "slug": "taken"}, "Organization already exists"),
    ],
)
async def test_create_refuses_bad_input(
    owlat: Application, args: dict[str, Any], message: str
) -> None:
    owner = await signed_in(owlat, "owner@example.com")
    await with_organization(owner, "taken")
    before = (await _count(owlat, "organizations"), await _count(owlat, "members"))
    with pytest.raises(ConvexError, match=message):
        await owner.mutation("organizations:create", args)
    assert (await _count(owlat, "organizations"), await _count(owlat, "members")) == before


async def test_update(owlat: Application) -> None:
    owner = await signed_in(owlat, "owner@example.com")
    organization_id = await with_organization(owner, "acme")
    await with_organization(owner, "other")
    updated = await owner.mutation(
        "organizations:update",
        {"organizationId": organization_id, "data": {"name": "Acme 2", "logo": "https://l.png"}},
    )
    assert (updated["name"], updated["logo"]) == ("Acme 2", "https://l.png")
    cleared = await owner.mutation(
        "organizations:update", {"organizationId": organization_id, "data": {"logo": None}}
    )
    assert "logo" not in cleared
    with pytest.raises(ConvexError, match="^Organization slug already taken$"):
        await owner.mutation(
            "organizations:update", {"organizationId": organization_id, "data": {"slug": "other"}}
        )
    with pytest.raises(ConvexError, match="^Organization not found$"):
        await owner.mutation("organizations:update", {"organizationId": "nope", "data": {}})


async def test_delete_is_owner_only_and_cascades(owlat: Application) -> None:
    owner = await signed_in(owlat, "owner@example.com")
    admin = await signed_in(owlat, "admin@example.com")
    organization_id = await with_organization(owner, "acme")
    await _join(owner, admin, "admin")
    await owner.mutation("invitations:invite", {"email": "later@example.com", "role": "editor"})
    await owner.mutation("apiKeys:create", {"name": "CI", "scopes": ["contacts:read"]})
    hook = {"name": "CRM", "url": "https://hooks.example.com/x", "events": ["contact.deleted"]}
    await owner.mutation("webhooks:create", hook)
    await owner.mutation("contacts:createFromSession", {"email": "c@example.com"})
    with pytest.raises(ConvexError, match="^Owner access required$"):
        await admin.mutation("organizations:remove", {"organizationId": organization_id})
    assert await owner.mutation("organizations:remove", {"organizationId": organization_id}) == (
        organization_id
    )
    await until_organization_deleted(owlat, organization_id)  # the rest: scheduled steps
    tables = ("organizations", "members", "invitations", "apiKeys", "contacts", "webhooks")
    for table in (*tables, "webhookDeliveryLogs"):
        assert await _count(owlat, table) == 0, table
    with pytest.raises(ConvexError, match="^No active organization$"):
        await admin.query("organizations:getActive")


async def test_set_active_and_get_full(owlat: Application) -> None:
    owner = await signed_in(owlat, "owner@example.com")
    editor = await signed_in(owlat, "editor@example.com")
    acme = await with_organization(owner, "acme")
    beta = await with_organization(owner, "beta")
    await owner.mutation("organizations:setActive", {"organizationSlug": "acme"})
    await _join(owner, editor)
    full = await owner.query("organizations:getFull", {})
    assert full["_id"] == acme
    assert sorted((m["user"]["email"], m["role"]) for m in full["members"]) == [
        ("editor@example.com", "editor"),
        ("owner@example.com", "owner"),
    ]
    assert [i["status"] for i in full["invitations"]] == ["accepted"]
    assert (await owner.mutation("organizations:setActive", {"organizationId": beta}))[
        "_id"
    ] == beta
    assert await owner.mutation("organizations:setActive", {"organizationId": None}) is None
    with pytest.raises(ConvexError, match="^No active organization$"):
        await owner.query("organizations:getFull", {})
    with pytest.raises(ConvexError, match="^Organization not found$"):
        await owner.mutation("organizations:setActive", {"organizationSlug": "missing"})
    with pytest.raises(ConvexError, match="^Not a member of this organization$"):
        await editor.query("organizations:getFull", {"organizationId": beta})
    members = await editor.query("organizations:listMembers", {})
    assert len(members) == 2


async def test_waitlisted_users_cannot_create_organizations(owlat: Application) -> None:
    await owlat.run_mutation("waitlist:setEnabledInternal", {"enabled": True}, internal=True)
    waiting = await signed_in(owlat, "waiting@example.com")
    with pytest.raises(ConvexError, match="on the waitlist"):
        await with_organization(waiting, "nope")
    assert await _count(owlat, "organizations") == 0
