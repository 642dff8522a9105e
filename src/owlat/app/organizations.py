"""Organizations: create, update, delete, list mine, set active, get full, get active.

`remove` (the owner's) closes the organization at once and deletes what it owns in a
scheduled, resumable job (`lib/organization_deletion.py`); until the job ends, the
organization is answered "Organization is being deleted".

Each function is session-scoped (the caller's JWT names its session) and has an internal
`…ViaSession` twin that the `/api/auth/organization/*` endpoints call with the session of
the cookie. Arguments take ids as strings so that an id of another table or a malformed
one is answered "Organization not found" rather than a validator error.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.documents import reread
from owlat.app.lib.errors import AuthFailure, admin_required
from owlat.app.lib.organizations import (
    by_slug,
    clean_name,
    clean_slug,
    delete_organization,
    organization_of,
)
from owlat.app.lib.permissions import is_admin_role, require_permission
from owlat.app.lib.session_functions import session_mutation, session_query
from owlat.app.lib.session_organization import get_mutation_context, get_session, now_ms
from owlat.app.lib.waitlist import require_off_waitlist
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, v

MAX_MEMBERS = 50


async def _members_with_users(ctx: QueryCtx, organization_id: str) -> list[dict[str, Any]]:
    members = (
        await ctx.db.query("members")
        .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
        .collect()
    )
    result = []
    for member in members:
        user = await ctx.db.get(member["userId"])
        profile = None
        if user is not None:
            profile = {
                "id": user["_id"],
                "name": user["name"],
                "email": user["email"],
                "image": user.get("image"),
            }
        result.append({**member, "user": profile})
    return result


async def _create(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    session = await get_session(ctx)
    await require_off_waitlist(ctx, session["userId"])
    name, slug = clean_name(args["name"]), clean_slug(args["slug"])
    if await by_slug(ctx, slug) is not None:
        raise AuthFailure("ORGANIZATION_ALREADY_EXISTS", "Organization already exists")
    now = now_ms()
    organization = {"name": name, "slug": slug, "createdAt": now, "updatedAt": now}
    for optional in ("logo", "metadata"):
        if args.get(optional) is not None:
            organization[optional] = args[optional]
    organization_id = await ctx.db.insert("organizations", organization)
    member_id = await ctx.db.insert(
        "members",
        {
            "organizationId": organization_id,
            "userId": session["userId"],
            "role": "owner",
            "createdAt": now,
        },
    )
    if not args.get("keepCurrentActiveOrganization"):
        await ctx.db.patch(
            session["_id"], {"activeOrganizationId": organization_id, "updatedAt": now}
        )
    return {**await reread(ctx, organization_id), "members": [await reread(ctx, member_id)]}


create, create_via_session = session_mutation(
    args={
        "name": v.string(),
        "slug": v.string(),
        "logo": v.optional(v.string()),
        "metadata": v.optional(v.string()),
        "keepCurrentActiveOrganization": v.optional(v.boolean()),
    }
)(_create)


async def _update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    session = await get_session(ctx)
    organization, member = await organization_of(ctx, session, args.get("organizationId"))
    if not is_admin_role(member["role"]):
        raise admin_required()
    data = args["data"]
    changes: dict[str, Any] = {"updatedAt": now_ms()}
    if data.get("name") is not None:
        changes["name"] = clean_name(data["name"])
    if data.get("slug") is not None:
        slug = clean_slug(data["slug"])
        other = await by_slug(ctx, slug)
        if other is not None and other["_id"] != organization["_id"]:
            raise AuthFailure("ORGANIZATION_SLUG_ALREADY_TAKEN", "Organization slug already taken")
        changes["slug"] = slug
    for optional in ("logo", "metadata"):
        if optional in data:
            changes[optional] = UNDEFINED if data[optional] is None else data[optional]
    await ctx.db.patch(organization["_id"], changes)
    return await reread(ctx, organization["_id"])


update, update_via_session = session_mutation(
    args={
        "organizationId": v.optional(v.string()),
        "data": v.object(
            {
                "name": v.optional(v.string()),
                "slug": v.optional(v.string()),
                "logo": v.optional(v.union(v.string(), v.null())),
                "metadata": v.optional(v.union(v.string(), v.null())),
            }
        ),
    }
)(_update)


async def _remove(ctx: MutationCtx, args: dict[str, Any]) -> str:
    session = await get_session(ctx)
    organization, member = await organization_of(ctx, session, args["organizationId"])
    require_permission(member["role"], "organization:delete")
    await delete_organization(ctx, organization["_id"])
    return str(organization["_id"])


remove, remove_via_session = session_mutation(args={"organizationId": v.string()})(_remove)


async def _list_mine(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    session = await get_session(ctx)
    memberships = (
        await ctx.db.query("members")
        .with_index("by_user", lambda q: q.eq("userId", session["userId"]))
        .collect()
    )
    organizations = []
    for member in memberships:
        organization = await ctx.db.get(member["organizationId"])
        if organization is not None:
            organizations.append(dict(organization))
    return organizations


list_mine, list_mine_via_session = session_query(args={})(_list_mine)


async def _set_active(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    session = await get_session(ctx)
    organization_id, slug = args.get("organizationId"), args.get("organizationSlug")
    if organization_id is None and slug is None:
        await ctx.db.patch(
            session["_id"], {"activeOrganizationId": UNDEFINED, "updatedAt": now_ms()}
        )
        return None
    organization, _ = await organization_of(ctx, session, organization_id, slug)
    await ctx.db.patch(
        session["_id"], {"activeOrganizationId": organization["_id"], "updatedAt": now_ms()}
    )
    return organization


set_active, set_active_via_session = session_mutation(
    args={
        "organizationId": v.optional(v.union(v.string(), v.null())),
        "organizationSlug": v.optional(v.string()),
    }
)(_set_active)


async def _get_full(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    session = await get_session(ctx)
    organization, _ = await organization_of(
        ctx, session, args.get("organizationId"), args.get("organizationSlug")
    )
    invitations = (
        await ctx.db.query("invitations")
        .with_index("by_org", lambda q: q.eq("organizationId", organization["_id"]))
        .collect()
    )
    return {
        **organization,
        "members": await _members_with_users(ctx, organization["_id"]),
        "invitations": [dict(i) for i in invitations],
    }


get_full, get_full_via_session = session_query(
    args={"organizationId": v.optional(v.string()), "organizationSlug": v.optional(v.string())}
)(_get_full)


async def _get_active(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The caller's active organization and role in it."""
    context = await get_mutation_context(ctx)
    return {**await reread(ctx, context.team_id), "role": context.role}


get_active, get_active_via_session = session_query(args={})(_get_active)


async def _list_members(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    session = await get_session(ctx)
    organization, _ = await organization_of(ctx, session, args.get("organizationId"))
    return await _members_with_users(ctx, organization["_id"])


list_members, list_members_via_session = session_query(
    args={"organizationId": v.optional(v.string())}
)(_list_members)
