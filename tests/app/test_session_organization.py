"""The session gate: exact errors, and revoked sessions revoke their tokens."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from owlat.app import auth
from owlat.app.lib.session_organization import SESSION_ID, get_mutation_context, now_ms
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller, owner_and_editor, signed_in, with_organization


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


async def test_not_authenticated_without_identity(owlat: Application) -> None:
    with pytest.raises(ConvexError, match="^Not authenticated$"):
        await owlat.run_query("organizations:getActive", {})


async def test_tokens_of_other_issuers_are_not_owlat_users(owlat: Application) -> None:
    caller = await signed_in(owlat, "a@example.com")
    identity = {**caller.identity, "issuer": "https://elsewhere.test"}
    with pytest.raises(ConvexError, match="^Not authenticated$"):
        await owlat.run_query("auth:getCurrentUser", {}, identity=identity)


async def test_session_id_must_be_the_users(owlat: Application) -> None:
    alice = await signed_in(owlat, "alice@example.com")
    bob = await signed_in(owlat, "bob@example.com")
    stolen = {**alice.identity, "sid": bob.session_id}
    with pytest.raises(ConvexError, match="^Not authenticated$"):
        await owlat.run_query("auth:getCurrentUser", {}, identity=stolen)
    for bad in ("", "not-an-id", alice.user_id):
        with pytest.raises(ConvexError, match="^Not authenticated$"):
            await owlat.run_query(
                "auth:getCurrentUser", {}, identity={**alice.identity, "sid": bad}
            )


async def test_revoked_session_stops_its_tokens(owlat: Application) -> None:
    caller = await signed_in(owlat, "a@example.com")
    assert (await caller.query("auth:getCurrentUser"))["email"] == "a@example.com"
    await owlat.run_mutation(
        "auth:deleteSession",
        {"userId": caller.user_id, "sessionId": caller.session_id},
        internal=True,
    )
    with pytest.raises(ConvexError, match="^Not authenticated$"):
        await caller.query("auth:getCurrentUser")


async def test_revocation_invalidates_the_reactive_query(owlat: Application) -> None:
    """The query's read set covers the session row: deleting it re-runs subscriptions."""
    caller = await signed_in(owlat, "a@example.com")
    await with_organization(caller, "acme")
    result = await owlat.run_query("organizations:getActive", {}, identity=caller.identity)
    assert result.read_set is not None
    seen: list[object] = []
    owlat.on_commit(seen.append)
    await owlat.run_mutation(
        "auth:deleteSession",
        {"userId": caller.user_id, "sessionId": caller.session_id},
        internal=True,
    )
    # other commits (background jobs) may land meanwhile: the one that deleted the session
    (commit,) = [
        commit for commit in seen  # type: ignore[attr-defined]
        if any(change.id == caller.session_id for change in commit.write_set.documents)
    ]  # fmt: skip
    assert result.read_set.overlaps(commit.write_set)  # type: ignore[attr-defined]


async def test_no_active_organization_and_not_a_member(owlat: Application) -> None:
    owner = await signed_in(owlat, "owner@example.com")
    with pytest.raises(ConvexError, match="^No active organization$"):
        await owner.query("organizations:getActive")
    organization_id = await with_organization(owner, "acme")
    editor = await signed_in(owlat, "editor@example.com")
    with pytest.raises(ConvexError, match="^Not a member of this organization$"):
        await editor.mutation("organizations:setActive", {"organizationId": organization_id})

    async def stale_active(ctx: Any) -> None:  # e.g. a membership removed by other means
        await ctx.db.patch(editor.session_id, {"activeOrganizationId": organization_id})

    await in_mutation(owlat, stale_active)
    with pytest.raises(ConvexError, match="^Not a member of this organization$"):
        await editor.query("organizations:getActive")


async def test_admin_access_required(owlat: Application) -> None:
    owner = await signed_in(owlat, "owner@example.com")
    organization_id = await with_organization(owner, "acme")
    editor = await signed_in(owlat, "editor@example.com")
    await owner.mutation("invitations:invite", {"email": editor.email, "role": "editor"})
    (invitation,) = await editor.query("invitations:listMine")
    await editor.mutation("invitations:accept", {"invitationId": invitation["_id"]})
    assert (await editor.query("organizations:getActive"))["_id"] == organization_id
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("organizations:update", {"data": {"name": "Mine now"}})


async def test_mutation_context_with_a_required_permission(owlat: Application) -> None:
    owner, editor, organization_id = await owner_and_editor(owlat)

    async def context_of(caller: Caller, require: str | None) -> list[str]:
        async def run(ctx: Any) -> list[str]:
            ctx.state[SESSION_ID] = caller.session_id
            context = await get_mutation_context(ctx, require=require)
            return [context.team_id, context.user_id, context.role]

        result: list[str] = await in_query(owlat, run)
        return result

    assert await context_of(owner, "contacts:manage") == [organization_id, owner.user_id, "owner"]
    assert await context_of(editor, None) == [organization_id, editor.user_id, "editor"]
    assert (await context_of(editor, "contacts:annotate"))[2] == "editor"
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await context_of(editor, "contacts:manage")
    with pytest.raises(ConvexError, match="^Owner access required$"):
        await context_of(editor, "organization:delete")


async def test_expired_records_are_purged_and_sessions_refreshed(owlat: Application) -> None:
    caller = await signed_in(owlat, "a@example.com")
    other = await signed_in(owlat, "b@example.com")

    async def age(ctx: Any) -> None:
        await ctx.db.patch(caller.session_id, {"expiresAt": 5.0})
        await ctx.db.patch(other.session_id, {"expiresAt": other_expiry - 2 * 24 * 3600 * 1000})
        await ctx.db.insert("rateLimits", {"key": "old", "value": 1.0, "since": 1.0})

    async def expiry(ctx: Any) -> float:
        return float((await ctx.db.get(other.session_id))["expiresAt"])

    other_expiry = await in_query(owlat, expiry)
    await in_mutation(owlat, age)
    assert (await owlat.run_mutation("auth:purgeExpired", {}, internal=True)).value == 2
    with pytest.raises(ConvexError, match="^Not authenticated$"):
        await caller.query("auth:getCurrentUser")
    refreshed = await owlat.run_mutation(
        "auth:refreshSession", {"sessionId": other.session_id}, internal=True
    )
    assert refreshed.value is True
    assert await in_query(owlat, expiry) >= other_expiry
    again = await owlat.run_mutation(
        "auth:refreshSession", {"sessionId": other.session_id}, internal=True
    )
    assert again.value is False


async def test_a_backlog_of_stale_rate_limit_rows_is_purged_in_scheduled_batches(
    owlat: Application,
) -> None:
    backlog = auth.PURGE_BATCH * 2 + 17

    async def fill(ctx: Any) -> None:
        for n in range(backlog):
            await ctx.db.insert("rateLimits", {"key": f"ip:{n}", "value": 1.0, "since": 1.0})
        await ctx.db.insert("rateLimits", {"key": "fresh", "value": 1.0, "since": now_ms()})

    async def keys(ctx: Any) -> list[str]:
        return [row["key"] for row in await ctx.db.query("rateLimits").collect()]

    await in_mutation(owlat, fill)
    first = await owlat.run_mutation("auth:purgeExpired", {}, internal=True)
    assert first.value == auth.PURGE_BATCH
    async with asyncio.timeout(20):
        while (remaining := await in_query(owlat, keys)) != ["fresh"]:
            assert "fresh" in remaining
            await asyncio.sleep(0.02)
