"""The waitlist: a new account waits (while the instance flag is on) until a platform
admin approves it. Users join and read their status; platform admins list, approve
(an approval mail is sent) and reject, and toggle the flag at run time."""

from __future__ import annotations

from typing import Any

from owlat.app.lib.documents import reread
from owlat.app.lib.errors import conflict, not_found
from owlat.app.lib.session_organization import get_user, now_ms
from owlat.app.lib.waitlist import (
    entry_of,
    is_waitlist_enabled,
    require_platform_admin,
    settings_row,
)
from owlat.runtime import MutationCtx, QueryCtx, internal, internal_mutation, mutation, query, v

STATUS = v.union(v.literal("waiting"), v.literal("approved"), v.literal("rejected"))


@query(args={})
async def status(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Whether the waitlist is on, and the caller's place on it (`none` if not on it)."""
    user = await get_user(ctx)
    entry = await entry_of(ctx, user["_id"])
    return {
        "enabled": await is_waitlist_enabled(ctx),
        "status": "none" if entry is None else entry["status"],
    }


@mutation(args={})
async def join(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Put the caller on the waitlist (idempotent); refused when the waitlist is off."""
    user = await get_user(ctx)
    if not await is_waitlist_enabled(ctx):
        raise conflict("WAITLIST_DISABLED", "The waitlist is not enabled")
    entry = await entry_of(ctx, user["_id"])
    if entry is None:
        entry_id = await ctx.db.insert(
            "waitlistEntries",
            {
                "userId": user["_id"],
                "email": user["email"],
                "status": "waiting",
                "createdAt": now_ms(),
            },
        )
        entry = await reread(ctx, entry_id)
    return entry


@query(args={"status": v.optional(STATUS)})
async def list_entries(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    await require_platform_admin(ctx, await get_user(ctx))
    wanted = args.get("status", "waiting")
    rows = (
        await ctx.db.query("waitlistEntries")
        .with_index("by_status", lambda q: q.eq("status", wanted))
        .collect()
    )
    return [dict(row) for row in rows]


async def _decide(ctx: MutationCtx, entry_id: str, decision: str) -> dict[str, Any]:
    admin = await get_user(ctx)
    await require_platform_admin(ctx, admin)
    normalized = ctx.db.normalize_id("waitlistEntries", entry_id)
    entry = None if normalized is None else await ctx.db.get(normalized)
    if entry is None:
        raise not_found("Waitlist entry")
    if entry["status"] == decision:
        raise conflict("ALREADY_DECIDED", f"This waitlist entry is already {decision}")
    await ctx.db.patch(
        entry["_id"], {"status": decision, "decidedBy": admin["_id"], "decidedAt": now_ms()}
    )
    if decision == "approved":
        await ctx.scheduler.run_after(
            0,
            internal.mail_jobs.send_waitlist_approval,
            {"email": entry["email"], "entryId": entry["_id"]},
        )
    return await reread(ctx, entry["_id"])


@mutation(args={"entryId": v.string()})
async def approve(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    return await _decide(ctx, args["entryId"], "approved")


@mutation(args={"entryId": v.string()})
async def reject(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    return await _decide(ctx, args["entryId"], "rejected")


async def _set_enabled(ctx: MutationCtx, enabled: bool) -> bool:
    row = await settings_row(ctx)
    if row is None:
        await ctx.db.insert("instanceSettings", {"waitlistEnabled": enabled, "updatedAt": now_ms()})
    else:
        await ctx.db.patch(row["_id"], {"waitlistEnabled": enabled, "updatedAt": now_ms()})
    return enabled


@mutation(args={"enabled": v.boolean()})
async def set_enabled(ctx: MutationCtx, args: dict[str, Any]) -> bool:
    """The runtime toggle (platform admins); it overrides `OWLAT_WAITLIST`."""
    await require_platform_admin(ctx, await get_user(ctx))
    return await _set_enabled(ctx, args["enabled"])


@internal_mutation(args={"enabled": v.boolean()})
async def set_enabled_internal(ctx: MutationCtx, args: dict[str, Any]) -> bool:
    return await _set_enabled(ctx, args["enabled"])
