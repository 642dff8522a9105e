"""Custom contact properties: definitions per organization (key, label, type).

`key` (lower-case letters, digits, underscores; unique per organization) and `type`
(string, number, boolean, date) are fixed at creation; `rename` changes the label.
Deleting a definition hides it at once and removes its value from every contact in
batches of `PURGE_BATCH` (one scheduled mutation per batch, so an audience of any size stays
within a transaction's limits); its key can be reused when the last batch is done. Values
live on the contact (`contacts.properties[key]`) and are checked against the type
(`lib/audience.py`).
Reads: any member; writes: `contacts:manage`.
"""

from __future__ import annotations

from typing import Any

from owlat.app import segment_counts
from owlat.app.lib.audience import MAX_LABEL, PROPERTY_KEY, RESERVED_KEYS, property_definitions
from owlat.app.lib.documents import reread
from owlat.app.lib.errors import invalid, not_found
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.schema import PROPERTY_TYPE
from owlat.runtime import (
    UNDEFINED,
    MutationCtx,
    QueryCtx,
    internal,
    internal_mutation,
    mutation,
    query,
    v,
)

PURGE_BATCH = 500


def _clean_label(label: str) -> str:
    label = label.strip()
    if not label or len(label) > MAX_LABEL:
        raise invalid("INVALID_LABEL", f"Label must be 1 to {MAX_LABEL} characters")
    return label


async def _definition(ctx: QueryCtx, organization_id: str, property_id: str) -> dict[str, Any]:
    normalized = ctx.db.normalize_id("contactProperties", property_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id or found.get("purging"):
        raise not_found("Contact property")
    return dict(found)


@query(args={})
async def list_from_session(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    organization_id = await get_team_id_from_session(ctx)
    definitions = await property_definitions(ctx, organization_id)
    return [definitions[key] for key in sorted(definitions)]


@mutation(args={"key": v.string(), "label": v.string(), "type": PROPERTY_TYPE})
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    context = await get_mutation_context(ctx, require="contacts:manage")
    key = args["key"].strip()
    if not PROPERTY_KEY.match(key):
        raise invalid(
            "INVALID_PROPERTY_KEY",
            "Property key must start with a lower-case letter and hold at most 64 "
            "lower-case letters, digits and underscores",
        )
    if key in RESERVED_KEYS:
        raise invalid("INVALID_PROPERTY_KEY", f'Property key "{key}" is a built-in contact field')
    label = _clean_label(args["label"])
    existing = await property_definitions(ctx, context.team_id, purging=True)
    if existing.get(key, {}).get("purging"):
        raise invalid(
            "PROPERTY_BEING_REMOVED",
            f'Property "{key}" is still being removed from contacts; try again in a minute',
        )
    if key in existing:
        raise invalid("PROPERTY_EXISTS", f'A property with key "{key}" already exists')
    now = now_ms()
    property_id = await ctx.db.insert(
        "contactProperties",
        {
            "organizationId": context.team_id,
            "key": key,
            "label": label,
            "type": args["type"],
            "createdAt": now,
            "updatedAt": now,
        },
    )
    # segments that named an earlier property with this key are counted afresh
    await segment_counts.restart_for_property(ctx, context.team_id, key)
    return str(property_id)


@mutation(args={"propertyId": v.string(), "label": v.string()})
async def rename(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx, require="contacts:manage")
    definition = await _definition(ctx, context.team_id, args["propertyId"])
    label = _clean_label(args["label"])
    await ctx.db.patch(definition["_id"], {"label": label, "updatedAt": now_ms()})
    return await reread(ctx, definition["_id"])


@mutation(args={"propertyId": v.string()})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Delete a definition and its value on every contact; returns the contacts changed
    now (the first batch; larger audiences are cleared by scheduled batches)."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    definition = await _definition(ctx, context.team_id, args["propertyId"])
    await ctx.db.patch(definition["_id"], {"purging": True, "updatedAt": now_ms()})
    return await _purge_batch(ctx, definition)


@internal_mutation(args={"propertyId": v.id("contactProperties")})
async def purge_values(ctx: MutationCtx, args: dict[str, Any]) -> None:
    definition = await ctx.db.get(args["propertyId"])
    if definition is not None and definition.get("purging"):
        await _purge_batch(ctx, dict(definition))


async def _purge_batch(ctx: MutationCtx, definition: dict[str, Any]) -> int:
    """Clear up to PURGE_BATCH contacts' values; delete the definition after the last."""
    key = definition["key"]  # PROPERTY_KEY: safe as a field path
    holders = (
        await ctx.db.query("contacts")
        .with_index("by_org", lambda q: q.eq("organizationId", definition["organizationId"]))
        .filter(lambda q: q.neq(q.field(f"properties.{key}"), UNDEFINED))
        .take(PURGE_BATCH)
    )
    for contact in holders:
        properties = {k: val for k, val in contact["properties"].items() if k != key}
        await ctx.db.patch(contact["_id"], {"properties": properties})
    if len(holders) < PURGE_BATCH:
        await ctx.db.delete(definition["_id"])
    else:
        await ctx.scheduler.run_after(
            0, internal.contactProperties.purgeValues, {"propertyId": definition["_id"]}
        )
    return len(holders)
