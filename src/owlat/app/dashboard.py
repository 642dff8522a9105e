"""What the dashboard's frame shows, in one reactive query.

`dashboard:viewer` answers the signed-in user, their organizations (for the switcher) and
the active one with the caller's role and the permissions that role has
(`lib/permissions.py`), so the web app hides what the role cannot do (the functions refuse
it anyway). Signed out (no token, an expired or revoked session) it answers null rather than
failing: the dashboard then shows the sign-in page. It reads the session row, so signing out,
switching organization or a role change pushes a new answer to every open tab.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.errors import AppError
from owlat.app.lib.instance import current
from owlat.app.lib.permissions import PERMISSIONS, has_permission
from owlat.app.lib.session_organization import get_membership, get_session
from owlat.runtime import QueryCtx, query, v

ROLE = v.union(v.literal("owner"), v.literal("admin"), v.literal("editor"))
_ORGANIZATION = {"_id": v.id("organizations"), "name": v.string(), "slug": v.string()}
VIEWER = v.object(
    {
        "user": v.object(
            {
                "_id": v.id("users"),
                "name": v.string(),
                "email": v.string(),
                "emailVerified": v.boolean(),
            }
        ),
        "organizations": v.array(v.object({**_ORGANIZATION, "role": ROLE})),
        "organization": v.union(
            v.object({**_ORGANIZATION, "role": ROLE, "permissions": v.array(v.string())}),
            v.null(),
        ),
    }
)


def _organization(organization: dict[str, Any]) -> dict[str, Any]:
    return {key: organization[key] for key in ("_id", "name", "slug")}


@query(args={}, returns=v.union(VIEWER, v.null()))
async def viewer(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The signed-in user, their organizations and the active one (with role and
    permissions), or null when signed out."""
    try:
        session = await get_session(ctx)
    except AppError:
        return None
    user = await ctx.db.get(session["userId"])
    if user is None:
        return None
    memberships = (
        await ctx.db.query("members")
        .with_index("by_user", lambda q: q.eq("userId", user["_id"]))
        .collect()
    )
    organizations = []
    for membership in memberships:
        found = await ctx.db.get(membership["organizationId"])
        if found is not None:
            organizations.append({**_organization(dict(found)), "role": membership["role"]})
    organizations.sort(key=lambda organization: organization["name"].lower())
    active = None
    active_id = session.get("activeOrganizationId")
    member = None if active_id is None else await get_membership(ctx, active_id, user["_id"])
    organization = None if member is None else await ctx.db.get(active_id)
    if member is not None and organization is not None:
        role = member["role"]
        active = {
            **_organization(dict(organization)),
            "role": role,
            "permissions": sorted(p for p in PERMISSIONS if has_permission(role, p)),
        }
    return {
        "user": {
            "_id": user["_id"],
            "name": user["name"],
            "email": user["email"],
            "emailVerified": user.get("emailVerified", False),
        },
        "organizations": organizations,
        "organization": active,
    }


@query(args={}, returns=v.object({"development": v.boolean()}))
async def instance(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """What the dashboard shows of this Owlat instance: whether it runs as `owlat dev`
    (then the local outbox at /dev/outbox is linked). Anyone may ask."""
    return {"development": current().development}
