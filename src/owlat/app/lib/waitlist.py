"""The waitlist flag: the instance config (`OWLAT_WAITLIST`) unless toggled at run time
(`waitlist:setEnabled`, stored in `instanceSettings`). While it is on, a new account
waits for a platform admin's approval before it can create or join organizations."""

from __future__ import annotations

from typing import Any

from owlat.app.lib.errors import forbidden
from owlat.app.lib.instance import current
from owlat.runtime import QueryCtx


async def settings_row(ctx: QueryCtx) -> dict[str, Any] | None:
    row = await ctx.db.query("instanceSettings").first()
    return None if row is None else dict(row)


async def is_waitlist_enabled(ctx: QueryCtx) -> bool:
    row = await settings_row(ctx)
    if row is not None and row.get("waitlistEnabled") is not None:
        return bool(row["waitlistEnabled"])
    return current().waitlist


async def entry_of(ctx: QueryCtx, user_id: str) -> dict[str, Any] | None:
    entry = await (
        ctx.db.query("waitlistEntries")
        .with_index("by_user", lambda q: q.eq("userId", user_id))
        .first()
    )
    return None if entry is None else dict(entry)


async def is_waitlisted(ctx: QueryCtx, user_id: str) -> bool:
    """Whether the user still waits (or was turned away) while the waitlist is on."""
    if not await is_waitlist_enabled(ctx):
        return False
    user = await ctx.db.get(user_id)
    if user is not None and user.get("isPlatformAdmin"):
        return False
    entry = await entry_of(ctx, user_id)
    return entry is not None and entry["status"] != "approved"


async def require_off_waitlist(ctx: QueryCtx, user_id: str) -> None:
    if await is_waitlisted(ctx, user_id):
        raise forbidden(
            "ON_WAITLIST",
            "Your account is on the waitlist: a platform admin must approve it first",
        )


async def require_platform_admin(ctx: QueryCtx, user: dict[str, Any]) -> None:
    if not user.get("isPlatformAdmin"):
        raise forbidden("PLATFORM_ADMIN_REQUIRED", "Platform admin access required")
