"""Members of an organization: change role, remove, leave, the caller's membership.

Rules: admins manage members; only an owner grants, changes or removes the owner role;
the last owner can neither leave, be removed nor be demoted.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.documents import reread
from owlat.app.lib.errors import AuthFailure, admin_required
from owlat.app.lib.organizations import organization_of
from owlat.app.lib.permissions import is_admin_role
from owlat.app.lib.session_functions import session_mutation, session_query
from owlat.app.lib.session_organization import get_session, now_ms
from owlat.app.schema import ROLE
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, v


def member_not_found() -> AuthFailure:
    return AuthFailure("MEMBER_NOT_FOUND", "Member not found")


def last_owner() -> AuthFailure:
    return AuthFailure(
        "YOU_CANNOT_LEAVE_THE_ORGANIZATION_AS_THE_ONLY_OWNER",
        "The organization must keep at least one owner",
    )


async def _owners(ctx: QueryCtx, organization_id: str) -> list[dict[str, Any]]:
    members = (
        await ctx.db.query("members")
        .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
        .collect()
    )
    return [m for m in members if m["role"] == "owner"]


async def _target(ctx: QueryCtx, organization_id: str, member_id_or_email: str) -> dict[str, Any]:
    """A member of the organization by member id or by user email."""
    normalized = ctx.db.normalize_id("members", member_id_or_email)
    member = None if normalized is None else await ctx.db.get(normalized)
    if member is None and "@" in member_id_or_email:
        user = (
            await ctx.db.query("users")
            .with_index("by_email", lambda q: q.eq("email", member_id_or_email.strip().lower()))
            .unique()
        )
        if user is not None:
            member = (
                await ctx.db.query("members")
                .with_index(
                    "by_org_and_user",
                    lambda q: q.eq("organizationId", organization_id).eq("userId", user["_id"]),
                )
                .unique()
            )
    if member is None or member["organizationId"] != organization_id:
        raise member_not_found()
    return dict(member)


async def _update_role(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    session = await get_session(ctx)
    organization, me = await organization_of(ctx, session, args.get("organizationId"))
    if not is_admin_role(me["role"]):
        raise admin_required()
    target = await _target(ctx, organization["_id"], args["memberId"])
    if "owner" in (args["role"], target["role"]) and me["role"] != "owner":
        raise AuthFailure(
            "OWNER_ACCESS_REQUIRED", "Only an owner can grant or change the owner role"
        )
    demoted = target["role"] == "owner" and args["role"] != "owner"
    if demoted and len(await _owners(ctx, organization["_id"])) <= 1:
        raise last_owner()
    await ctx.db.patch(target["_id"], {"role": args["role"]})
    return await reread(ctx, target["_id"])


update_role, update_role_via_session = session_mutation(
    args={"memberId": v.string(), "role": ROLE, "organizationId": v.optional(v.string())}
)(_update_role)


async def _forget_active(ctx: MutationCtx, user_id: str, organization_id: str) -> None:
    sessions = (
        await ctx.db.query("sessions")
        .with_index("by_user", lambda q: q.eq("userId", user_id))
        .collect()
    )
    for session in sessions:
        if session.get("activeOrganizationId") == organization_id:
            await ctx.db.patch(
                session["_id"], {"activeOrganizationId": UNDEFINED, "updatedAt": now_ms()}
            )


async def _remove(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    session = await get_session(ctx)
    organization, me = await organization_of(ctx, session, args.get("organizationId"))
    target = await _target(ctx, organization["_id"], args["memberIdOrEmail"])
    if target["_id"] != me["_id"] and not is_admin_role(me["role"]):
        raise admin_required()
    if target["role"] == "owner":
        if me["role"] != "owner":
            raise AuthFailure("OWNER_ACCESS_REQUIRED", "Only an owner can remove an owner")
        if len(await _owners(ctx, organization["_id"])) <= 1:
            raise last_owner()
    await ctx.db.delete(target["_id"])
    await _forget_active(ctx, target["userId"], organization["_id"])
    return {"member": target}


remove, remove_via_session = session_mutation(
    args={"memberIdOrEmail": v.string(), "organizationId": v.optional(v.string())}
)(_remove)


async def _leave(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    session = await get_session(ctx)
    organization, me = await organization_of(ctx, session, args["organizationId"])
    if me["role"] == "owner" and len(await _owners(ctx, organization["_id"])) <= 1:
        raise last_owner()
    await ctx.db.delete(me["_id"])
    await _forget_active(ctx, me["userId"], organization["_id"])
    return me


leave, leave_via_session = session_mutation(args={"organizationId": v.string()})(_leave)


async def _get_active_member(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    session = await get_session(ctx)
    _, me = await organization_of(ctx, session)
    return me


get_active_member, get_active_member_via_session = session_query(args={})(_get_active_member)
