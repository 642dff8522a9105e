"""Who is calling, and in which organization: the gate of every dashboard function.

A call is authenticated by an Owlat JWT (`ctx.auth`): its `sid` claim names the session,
which must still exist and not be expired, so revoking a session revokes its tokens (and
reactive queries re-run when the session row changes). The `/api/auth` endpoints call the
internal twins of these functions with the session id from the cookie instead
(`session_functions.py` sets `SESSION_ID` in `ctx.state`).

Errors: "Not authenticated", "No active organization", "Not a member of this
organization", and `require_permission`'s ("Admin access required", ...).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from owlat.app.lib.errors import no_active_organization, not_a_member, not_authenticated
from owlat.app.lib.instance import current
from owlat.app.lib.permissions import require_permission
from owlat.runtime import QueryCtx

SESSION_ID = "owlat_session_id"  # key of ctx.state


@dataclasses.dataclass(frozen=True)
class MutationContext:
    team_id: str
    user_id: str
    role: str
    session_id: str


def now_ms() -> float:
    return float(int(time.time() * 1000))


async def get_session(ctx: QueryCtx) -> dict[str, Any]:
    """The caller's live session document, or "Not authenticated"."""
    session_id = ctx.state.get(SESSION_ID)
    subject = None
    if session_id is None:
        identity = await ctx.auth.get_user_identity()
        if identity is None or identity.get("issuer") != current().base_url:
            raise not_authenticated()
        session_id, subject = identity.get("sid"), identity.get("subject")
    if not isinstance(session_id, str):
        raise not_authenticated()
    normalized = ctx.db.normalize_id("sessions", session_id)
    session = None if normalized is None else await ctx.db.get(normalized)
    if (
        session is None
        or session["expiresAt"] <= now_ms()
        or (subject is not None and session["userId"] != subject)
    ):
        raise not_authenticated()
    return dict(session)


async def get_user(ctx: QueryCtx) -> dict[str, Any]:
    session = await get_session(ctx)
    user = await ctx.db.get(session["userId"])
    if user is None:
        raise not_authenticated()
    return dict(user)


async def get_membership(
    ctx: QueryCtx, organization_id: str, user_id: str
) -> dict[str, Any] | None:
    member = await (
        ctx.db.query("members")
        .with_index(
            "by_org_and_user",
            lambda q: q.eq("organizationId", organization_id).eq("userId", user_id),
        )
        .unique()
    )
    return None if member is None else dict(member)


async def get_mutation_context(ctx: QueryCtx, *, require: str | None = None) -> MutationContext:
    """Team (organization) id, user id and role of the caller in its active organization;
    with `require`, refused unless the role has that permission (`permissions.py`)."""
    session = await get_session(ctx)
    organization_id = session.get("activeOrganizationId")
    if organization_id is None:
        raise no_active_organization()
    member = await get_membership(ctx, organization_id, session["userId"])
    if member is None:
        raise not_a_member()
    if require is not None:
        require_permission(member["role"], require)
    return MutationContext(organization_id, session["userId"], member["role"], session["_id"])


async def get_team_id_from_session(ctx: QueryCtx) -> str:
    """The caller's active organization id (checked: the caller is a member)."""
    return (await get_mutation_context(ctx)).team_id
