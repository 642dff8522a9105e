"""Finding an organization the caller may see (one being deleted is answered "Organization
is being deleted"), and starting the deletion of one with all it owns."""

from __future__ import annotations

import re
from typing import Any

from owlat.app.lib import organization_deletion
from owlat.app.lib.errors import AuthFailure, no_active_organization, not_a_member
from owlat.app.lib.session_organization import get_membership
from owlat.runtime import MutationCtx, QueryCtx

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
    if organization_deletion.is_being_deleted(organization):
        raise organization_being_deleted()
    member = await get_membership(ctx, organization["_id"], session["userId"])
    if member is None:
        raise not_a_member()
    return organization, member


def organization_being_deleted() -> AuthFailure:
    return AuthFailure("ORGANIZATION_BEING_DELETED", "Organization is being deleted")


async def delete_organization(ctx: MutationCtx, organization_id: str) -> None:
    """Start deleting an organization: closed to everyone at once, its rows and files
    deleted by a resumable job (`lib/organization_deletion.py`)."""
    await organization_deletion.begin(ctx, organization_id)
