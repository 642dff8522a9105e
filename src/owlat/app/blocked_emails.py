"""The suppression list (`blockedEmails`): addresses no marketing mail goes to.

Reasons: `bounced`, `complained`, `manual`, `unengaged`. Adding never downgrades: an
address already blocked as bounced or complained stays so; an `unengaged` row is upgraded
by any other reason. Send paths call `lib/audience.py`'s `is_suppressed` (transactional
mail ignores `unengaged` rows). Reads: any member; writes: `contacts:manage`.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.audience import PAGINATION_OPTS, blocked_entry, clean_email, page_options
from owlat.app.lib.errors import invalid, not_found
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.schema import BLOCK_REASON
from owlat.runtime import MutationCtx, QueryCtx, mutation, query, v

MAX_NOTES = 5000
REASONS = ("bounced", "complained", "manual", "unengaged")


@mutation(
    args={
        "email": v.string(),
        "reason": BLOCK_REASON,
        "bounceType": v.optional(v.union(v.literal("hard"), v.literal("soft"))),
        "notes": v.optional(v.string()),
    }
)
async def add(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Block an address; "<email> is already blocked (<reason>)" if it is (an `unengaged`
    row is upgraded to the new reason instead)."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    email = clean_email(args["email"])
    notes = (args.get("notes") or "").strip()
    if len(notes) > MAX_NOTES:
        raise invalid("INVALID_NOTES", f"Notes must be at most {MAX_NOTES} characters")
    if args.get("bounceType") is not None and args["reason"] != "bounced":
        raise invalid("INVALID_BOUNCE_TYPE", "bounceType is only allowed with reason bounced")
    existing = await blocked_entry(ctx, context.team_id, email)
    if existing is not None:
        if existing["reason"] == "unengaged" and args["reason"] != "unengaged":
            upgrade: dict[str, Any] = {"reason": args["reason"]}
            if args.get("bounceType") is not None:
                upgrade["bounceType"] = args["bounceType"]
            if notes:
                upgrade["notes"] = notes
            await ctx.db.patch(existing["_id"], upgrade)
            return str(existing["_id"])
        raise invalid("ALREADY_BLOCKED", f"{email} is already blocked ({existing['reason']})")
    record: dict[str, Any] = {
        "organizationId": context.team_id,
        "email": email,
        "reason": args["reason"],
        "createdBy": context.user_id,
        "createdAt": now_ms(),
    }
    if args.get("bounceType") is not None:
        record["bounceType"] = args["bounceType"]
    if notes:
        record["notes"] = notes
    return str(await ctx.db.insert("blockedEmails", record))


@mutation(args={"email": v.string()})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Unblock an address (mail may go to it again)."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    email = clean_email(args["email"])
    existing = await blocked_entry(ctx, context.team_id, email)
    if existing is None:
        raise not_found("Blocked email")
    await ctx.db.delete(existing["_id"])


@query(
    args={
        "paginationOpts": PAGINATION_OPTS,
        "reason": v.optional(BLOCK_REASON),
    }
)
async def list_from_session(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A page of blocked addresses, newest first, optionally of one reason."""
    organization_id = await get_team_id_from_session(ctx)
    options = page_options(args["paginationOpts"])
    reason = args.get("reason")
    if reason is None:
        rows = ctx.db.query("blockedEmails").with_index(
            "by_org", lambda q: q.eq("organizationId", organization_id)
        )
    else:
        rows = ctx.db.query("blockedEmails").with_index(
            "by_org_reason", lambda q: q.eq("organizationId", organization_id).eq("reason", reason)
        )
    return dict(await rows.order("desc").paginate(options))


@query(args={"email": v.string()})
async def check(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The block of an address, or None if mail may go to it."""
    organization_id = await get_team_id_from_session(ctx)
    return await blocked_entry(ctx, organization_id, clean_email(args["email"]))


@query(args={})
async def counts_by_reason(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, int]:
    organization_id = await get_team_id_from_session(ctx)
    return {reason: await _count(ctx, organization_id, reason) for reason in REASONS}


async def _count(ctx: QueryCtx, organization_id: str, reason: str) -> int:
    rows = (
        await ctx.db.query("blockedEmails")
        .with_index(
            "by_org_reason",
            lambda q: q.eq("organizationId", organization_id).eq("reason", reason),
        )
        .collect()
    )
    return len(rows)
