"""Finding an organization the caller may see, and deleting one with all it owns."""

from __future__ import annotations

import re
from typing import Any

from owlat.app.lib.errors import AuthFailure, no_active_organization, not_a_member
from owlat.app.lib.session_organization import get_membership
from owlat.app.schema import ORG_TABLES
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
MAX_NAME = 200


def organization_not_found() -> AuthFailure:
    return AuthFailure("ORGANIZATION_NOT_FOUND", "Organization not found")


def clean_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise AuthFailure("INVALID_NAME", f"Name must be 1 to {MAX_NAME} characters")
    return name


def clean_slug(slug: str) -> str:
    slug = slug.strip().lower()
    if not SLUG.match(slug):
        raise AuthFailure(
            "INVALID_SLUG",
            "Slug must be 1 to 64 lower-case letters, digits and inner hyphens",
        )
    return slug


async def by_slug(ctx: QueryCtx, slug: str) -> dict[str, Any] | None:
    found = (
        await ctx.db.query("organizations")
        .with_index("by_slug", lambda q: q.eq("slug", slug))
        .unique()
    )
    return None if found is None else dict(found)


async def organization_of(
    ctx: QueryCtx,
    session: dict[str, Any],
    organization_id: str | None = None,
    slug: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(organization, caller's membership) of an id, a slug, or the session's active one."""
    if organization_id is None and slug is None:
        organization_id = session.get("activeOrganizationId")
        if organization_id is None:
            raise no_active_organization()
    organization: dict[str, Any] | None
    if organization_id is not None:
        normalized = ctx.db.normalize_id("organizations", organization_id)
        found = None if normalized is None else await ctx.db.get(normalized)
        organization = None if found is None else dict(found)
    else:
        organization = await by_slug(ctx, str(slug))
    if organization is None:
        raise organization_not_found()
    member = await get_membership(ctx, organization["_id"], session["userId"])
    if member is None:
        raise not_a_member()
    return organization, member


async def delete_organization(ctx: MutationCtx, organization_id: str) -> None:
    """Delete an organization, every document of its org-scoped tables, and make it no
    session's active organization."""
    for table in ORG_TABLES:
        rows = (
            await ctx.db.query(table)
            .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
            .collect()
        )
        for row in rows:
            await ctx.db.delete(row["_id"])
    sessions = (
        await ctx.db.query("sessions")
        .with_index("by_active_org", lambda q: q.eq("activeOrganizationId", organization_id))
        .collect()
    )
    for session in sessions:
        await ctx.db.patch(session["_id"], {"activeOrganizationId": UNDEFINED})
    await ctx.db.delete(organization_id)
