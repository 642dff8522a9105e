"""waitlist:* — the flag (config and runtime toggle), join/status, list/approve/reject."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from tests.app.conftest import Caller, outbox, signed_in, with_organization


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


async def _platform_admin(owlat: Application) -> Caller:
    user_id = (
        await owlat.run_mutation(
            "auth:createPlatformAdmin",
            {"email": "root@example.com", "name": "Root", "passwordHash": "h"},
            internal=True,
        )
    ).value
    session = await owlat.run_mutation(
        "auth:createSession", {"userId": user_id, "tokenHash": "root"}, internal=True
    )
    return Caller(owlat, user_id, session.value["_id"], "root@example.com")


async def test_off_by_default(owlat: Application) -> None:
    user = await signed_in(owlat, "a@example.com")
    assert await user.query("waitlist:status") == {"enabled": False, "status": "none"}
    with pytest.raises(ConvexError, match="^The waitlist is not enabled$"):
        await user.mutation("waitlist:join")
    await with_organization(user, "free")


async def test_approval_flow(owlat: Application, tmp_path: Path) -> None:
    admin = await _platform_admin(owlat)
    assert await admin.mutation("waitlist:setEnabled", {"enabled": True}) is True
    user = await signed_in(owlat, "new@example.com")
    assert await user.query("waitlist:status") == {"enabled": True, "status": "waiting"}
    assert (await user.mutation("waitlist:join"))["status"] == "waiting"  # idempotent
    with pytest.raises(ConvexError, match="^Your account is on the waitlist"):
        await with_organization(user, "early")
    with pytest.raises(ConvexError, match="^Platform admin access required$"):
        await user.query("waitlist:listEntries", {})
    with pytest.raises(ConvexError, match="^Platform admin access required$"):
        await user.mutation("waitlist:setEnabled", {"enabled": False})
    (entry,) = await admin.query("waitlist:listEntries", {})
    assert entry["email"] == "new@example.com"
    approved = await admin.mutation("waitlist:approve", {"entryId": entry["_id"]})
    assert approved["status"] == "approved" and approved["decidedBy"] == admin.user_id
    with pytest.raises(ConvexError, match="^This waitlist entry is already approved$"):
        await admin.mutation("waitlist:approve", {"entryId": entry["_id"]})
    with pytest.raises(ConvexError, match="^Waitlist entry not found$"):
        await admin.mutation("waitlist:reject", {"entryId": "nope"})
    await with_organization(user, "now-ok")
    for _ in range(100):
        if outbox(tmp_path):
            break
        await asyncio.sleep(0.02)
    (mail,) = outbox(tmp_path)
    assert (mail["To"], mail["Subject"]) == ("new@example.com", "Your Owlat account is approved")


async def test_rejected_users_cannot_join_organizations(owlat: Application) -> None:
    admin = await _platform_admin(owlat)
    organization_id = await with_organization(admin, "acme")
    await admin.mutation("waitlist:setEnabled", {"enabled": True})
    user = await signed_in(owlat, "no@example.com")
    (entry,) = await admin.query("waitlist:listEntries", {"status": "waiting"})
    await admin.mutation("waitlist:reject", {"entryId": entry["_id"]})
    assert await user.query("waitlist:status") == {"enabled": True, "status": "rejected"}
    invitation = await admin.mutation("invitations:invite", {"email": user.email, "role": "editor"})
    with pytest.raises(ConvexError, match="^Your account is on the waitlist"):
        await user.mutation("invitations:accept", {"invitationId": invitation["_id"]})
    # turning the waitlist off lets everyone in
    await admin.mutation("waitlist:setEnabled", {"enabled": False})
    await user.mutation("invitations:accept", {"invitationId": invitation["_id"]})
    assert (await user.query("organizations:getActive"))["_id"] == organization_id


async def test_config_flag(tmp_path: Path, database_url: str) -> None:
    from owlat.app.lib import instance
    from owlat.runtime.testing import open_test_app

    instance.configure(tmp_path, "http://owlat.test", waitlist=True)
    async with open_test_app("owlat.app", tmp_path, database_url=database_url) as owlat:
        user = await signed_in(owlat, "a@example.com")
        assert await user.query("waitlist:status") == {"enabled": True, "status": "waiting"}
        admin = await _platform_admin(owlat)
        assert await admin.query("waitlist:status") == {"enabled": True, "status": "none"}
        await with_organization(admin, "admins-are-never-waitlisted")
