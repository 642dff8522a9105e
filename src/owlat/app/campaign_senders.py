"""`campaignSenders:*`: the curated campaign From list (rules: `lib/campaigns/senders.py`).

Admins (`organization:manage`): `create({email, displayName?})` (a valid address on a
verified sending domain of the organization; 409 when listed already), `update({senderId,
displayName?, isEnabled?})`, `setDefault({senderId})`, `remove({senderId})`, `list`.
Any member: `listForPicker` (the enabled senders, the default first: what a draft may use).
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.audience import clean_email, organization_rows
from owlat.app.lib.campaigns.drafts import clean_header
from owlat.app.lib.campaigns.senders import senders_of
from owlat.app.lib.domains.sender_check import ensure_sender_allowed
from owlat.app.lib.errors import conflict, not_found
from owlat.app.lib.session_organization import get_mutation_context, now_ms
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, mutation, query, v

SENDER_ID = {"senderId": v.string()}


async def _sender_of(ctx: QueryCtx, organization_id: str, sender_id: str) -> dict[str, Any]:
    normalized = ctx.db.normalize_id("campaignSenders", sender_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id:
        raise not_found("Sender")
    return dict(found)


@mutation(args={"email": v.string(), "displayName": v.optional(v.string())})
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Add a sender (the first one becomes the default); its id."""
    context = await get_mutation_context(ctx, require="organization:manage")
    email = clean_email(args["email"])
    domains = await organization_rows(ctx, "domains", context.team_id)
    ensure_sender_allowed(email, domains, "smtp")  # a verified sending domain
    senders = await senders_of(ctx, context.team_id)
    if any(row["email"] == email for row in senders):
        raise conflict("SENDER_EXISTS", f"{email} is a campaign sender already")
    now = now_ms()
    row: dict[str, Any] = {
        "organizationId": context.team_id,
        "email": email,
        "isEnabled": True,
        "isDefault": not senders,
        "createdBy": context.user_id,
        "createdAt": now,
        "updatedAt": now,
    }
    name = clean_header(args.get("displayName") or "", "displayName")
    if name:
        row["displayName"] = name
    return str(await ctx.db.insert("campaignSenders", row))


@mutation(
    args={**SENDER_ID, "displayName": v.optional(v.string()), "isEnabled": v.optional(v.boolean())}
)
async def update(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Change a sender's display name ("" clears it) or switch it on or off."""
    context = await get_mutation_context(ctx, require="organization:manage")
    sender = await _sender_of(ctx, context.team_id, args["senderId"])
    patch: dict[str, Any] = {"updatedAt": now_ms()}
    if "displayName" in args:
        patch["displayName"] = clean_header(args["displayName"], "displayName") or UNDEFINED
    if "isEnabled" in args:
        patch["isEnabled"] = args["isEnabled"]
    await ctx.db.patch(sender["_id"], patch)


@mutation(args=SENDER_ID)
async def set_default(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Make a sender the default (the only one)."""
    context = await get_mutation_context(ctx, require="organization:manage")
    sender = await _sender_of(ctx, context.team_id, args["senderId"])
    now = now_ms()
    for row in await senders_of(ctx, context.team_id):
        if row["isDefault"] != (row["_id"] == sender["_id"]):
            await ctx.db.patch(
                row["_id"], {"isDefault": row["_id"] == sender["_id"], "updatedAt": now}
            )


@mutation(args=SENDER_ID)
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete a sender (drafts From it fail preflight until they choose another)."""
    context = await get_mutation_context(ctx, require="organization:manage")
    sender = await _sender_of(ctx, context.team_id, args["senderId"])
    await ctx.db.delete(sender["_id"])


@query(args={})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Every sender, the default first."""
    context = await get_mutation_context(ctx, require="organization:manage")
    return await senders_of(ctx, context.team_id)


@query(args={})
async def list_for_picker(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The enabled senders (`email`, `displayName`, `isDefault`), the default first."""
    context = await get_mutation_context(ctx)
    return [
        {key: row[key] for key in ("_id", "email", "displayName", "isDefault") if key in row}
        for row in await senders_of(ctx, context.team_id)
        if row["isEnabled"]
    ]
