"""Segments: saved condition trees over an organization's contacts (reference §7.3, §9).

The language lives in `lib/segment_filters.py`; every read compiles the tree into one
database filter on the organization's contacts, so counts and pages are computed by the
database and, being queries, update live when a contact changes. A saved segment's count
is also kept up to date by the contacts trigger (segment_counts.py), so `count` reads a
few rows instead of scanning once that count is ready. Relative dates
(`in_last`) are evaluated when the query runs: a subscribed result re-runs when the data
it read changes, not merely as time passes. A stored tree that a later property change
broke (deleted or retyped property) is reported by name rather than counted as zero.
Names are unique per organization (case-insensitive), at most 200 characters.

Reads: any member; writes: `segments:manage`.
"""

from __future__ import annotations

from typing import Any

from owlat.app import segment_counts
from owlat.app.lib.audience import (
    PAGINATION_OPTS,
    live_lists,
    organization_rows,
    page_options,
    property_definitions,
)
from owlat.app.lib.contacts import public
from owlat.app.lib.documents import reread
from owlat.app.lib.errors import AppError, invalid, not_found
from owlat.app.lib.segment_filters import Predicate, compile, validate
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, mutation, query, v

MAX_NAME = 200
MAX_DESCRIPTION = 5000
MAX_PREVIEW = 50
DEFAULT_PREVIEW = 10


async def _segment(ctx: QueryCtx, organization_id: str, segment_id: str) -> dict[str, Any]:
    """The organization's segment, or "Segment not found"."""
    normalized = ctx.db.normalize_id("segments", segment_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id:
        raise not_found("Segment")
    return dict(found)


async def _list_ids(ctx: QueryCtx, organization_id: str) -> set[str]:
    """The organization's live mailing lists (a condition may name only these)."""
    return {str(row["_id"]) for row in await live_lists(ctx, organization_id)}


async def _checked_filters(ctx: QueryCtx, organization_id: str, filters: Any) -> dict[str, Any]:
    """`filters` normalized against the organization's properties and lists."""
    definitions = await property_definitions(ctx, organization_id)
    return validate(filters, definitions, await _list_ids(ctx, organization_id))


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise invalid("INVALID_NAME", f"Segment name must be 1 to {MAX_NAME} characters")
    return name


def _clean_description(description: str) -> str:
    description = description.strip()
    if len(description) > MAX_DESCRIPTION:
        raise invalid(
            "INVALID_DESCRIPTION", f"Description must be at most {MAX_DESCRIPTION} characters"
        )
    return description


async def _require_free_name(
    ctx: QueryCtx, organization_id: str, name: str, segment_id: str | None = None
) -> None:
    for other in await organization_rows(ctx, "segments", organization_id):
        if other["_id"] != segment_id and other["name"].lower() == name.lower():
            raise invalid("SEGMENT_EXISTS", f'A segment named "{other["name"]}" already exists')


# -- evaluation ---------------------------------------------------------------------------


async def _predicate(ctx: QueryCtx, organization_id: str, filters: Any) -> Predicate:
    return compile(filters, await property_definitions(ctx, organization_id), now_ms())


async def _segment_predicate(
    ctx: QueryCtx, organization_id: str, segment: dict[str, Any]
) -> Predicate:
    """The stored tree compiled; a tree a later property change broke is named."""
    try:
        return await _predicate(ctx, organization_id, segment["filters"])
    except AppError as error:
        raise invalid(
            "INVALID_FILTERS",
            f'Segment "{segment["name"]}" can no longer be evaluated ({error.data}): '
            "edit its filters",
        ) from None


async def _target(ctx: QueryCtx, organization_id: str, args: dict[str, Any]) -> Predicate:
    """The predicate of `segmentId` or of unsaved `filters` (exactly one is given)."""
    has_segment, has_filters = args.get("segmentId") is not None, "filters" in args
    if has_segment == has_filters:
        raise invalid("INVALID_ARGUMENTS", "Pass either segmentId or filters")
    if has_segment:
        segment = await _segment(ctx, organization_id, args["segmentId"])
        return await _segment_predicate(ctx, organization_id, segment)
    filters = await _checked_filters(ctx, organization_id, args["filters"])
    return await _predicate(ctx, organization_id, filters)


def _contacts(ctx: QueryCtx, organization_id: str, predicate: Predicate) -> Any:
    """The organization's matching live contacts, newest first."""
    return (
        ctx.db.query("contacts")
        .with_index("by_org_created", lambda q: q.eq("organizationId", organization_id))
        .order("desc")
        .filter(predicate)
    )


# -- reads --------------------------------------------------------------------------------


@query(args={})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The organization's segments by name."""
    organization_id = await get_team_id_from_session(ctx)
    segments = await organization_rows(ctx, "segments", organization_id)
    return sorted(segments, key=lambda segment: segment["name"].lower())


@query(args={"segmentId": v.string()})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The segment, or None if it does not exist or is another organization's."""
    organization_id = await get_team_id_from_session(ctx)
    try:
        return await _segment(ctx, organization_id, args["segmentId"])
    except AppError:
        return None


@query(args={"segmentId": v.string()})
async def count(ctx: QueryCtx, args: dict[str, Any]) -> int:
    """How many live contacts the segment matches now: the maintained count
    (segment_counts.py) once it is ready, else counted by the database."""
    organization_id = await get_team_id_from_session(ctx)
    segment = await _segment(ctx, organization_id, args["segmentId"])
    predicate = await _segment_predicate(ctx, organization_id, segment)
    stored = await segment_counts.stored_count(ctx, segment["_id"])
    if stored is not None:
        return stored
    return int(await _contacts(ctx, organization_id, predicate).count())


@query(args={"filters": v.any()})
async def count_filters(ctx: QueryCtx, args: dict[str, Any]) -> int:
    """How many live contacts unsaved `filters` match (the builder's preview)."""
    organization_id = await get_team_id_from_session(ctx)
    filters = await _checked_filters(ctx, organization_id, args["filters"])
    predicate = await _predicate(ctx, organization_id, filters)
    return int(await _contacts(ctx, organization_id, predicate).count())


@query(
    args={
        "segmentId": v.optional(v.string()),
        "filters": v.optional(v.any()),
        "limit": v.optional(v.number()),
    }
)
async def preview(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Up to `limit` (1 to 50, default 10) matching contacts, newest first, of a segment
    or of unsaved filters."""
    organization_id = await get_team_id_from_session(ctx)
    limit = args.get("limit", DEFAULT_PREVIEW)
    if not 1 <= limit <= MAX_PREVIEW or limit != int(limit):
        raise invalid("INVALID_LIMIT", f"limit must be a whole number from 1 to {MAX_PREVIEW}")
    predicate = await _target(ctx, organization_id, args)
    rows = await _contacts(ctx, organization_id, predicate).take(int(limit))
    return [public(dict(row)) for row in rows]


@query(args={"segmentId": v.string(), "paginationOpts": PAGINATION_OPTS})
async def list_contacts(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A page of the segment's contacts, newest first."""
    organization_id = await get_team_id_from_session(ctx)
    options = page_options(args["paginationOpts"])
    segment = await _segment(ctx, organization_id, args["segmentId"])
    predicate = await _segment_predicate(ctx, organization_id, segment)
    result = await _contacts(ctx, organization_id, predicate).paginate(options)
    return {**result, "page": [public(dict(row)) for row in result["page"]]}


@query(args={"segmentId": v.string(), "contactId": v.string()})
async def matches(ctx: QueryCtx, args: dict[str, Any]) -> bool:
    """Whether the contact is in the segment (a soft-deleted contact never is)."""
    organization_id = await get_team_id_from_session(ctx)
    segment = await _segment(ctx, organization_id, args["segmentId"])
    normalized = ctx.db.normalize_id("contacts", args["contactId"])
    contact = None if normalized is None else await ctx.db.get(normalized)
    if contact is None or contact["organizationId"] != organization_id:
        raise not_found("Contact")
    predicate = await _segment_predicate(ctx, organization_id, segment)
    found = await (
        ctx.db.query("contacts")
        .with_index(
            "by_org_email",
            lambda q: q.eq("organizationId", organization_id).eq("email", contact["email"]),
        )
        .filter(lambda q: q.eq(q.field("_id"), contact["_id"]))
        .filter(predicate)
        .first()
    )
    return found is not None


# -- writes -------------------------------------------------------------------------------


@mutation(args={"name": v.string(), "description": v.optional(v.string()), "filters": v.any()})
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    context = await get_mutation_context(ctx, require="segments:manage")
    name = _clean_name(args["name"])
    description = _clean_description(args.get("description") or "")
    filters = await _checked_filters(ctx, context.team_id, args["filters"])
    await _require_free_name(ctx, context.team_id, name)
    now = now_ms()
    record: dict[str, Any] = {
        "organizationId": context.team_id,
        "name": name,
        "filters": filters,
        "createdBy": context.user_id,
        "createdAt": now,
        "updatedAt": now,
    }
    if description:
        record["description"] = description
    segment_id = await ctx.db.insert("segments", record)
    await segment_counts.start(ctx, {**record, "_id": segment_id})
    return str(segment_id)


@mutation(
    args={
        "segmentId": v.string(),
        "name": v.optional(v.string()),
        "description": v.optional(v.union(v.string(), v.null())),
        "filters": v.optional(v.any()),
    }
)
async def update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Change the name, description (None or "" clears it) or filters; returns the
    segment."""
    context = await get_mutation_context(ctx, require="segments:manage")
    segment = await _segment(ctx, context.team_id, args["segmentId"])
    changes: dict[str, Any] = {}
    if args.get("name") is not None:
        name = _clean_name(args["name"])
        await _require_free_name(ctx, context.team_id, name, segment["_id"])
        changes["name"] = name
    if "description" in args:
        description = _clean_description(args["description"] or "")
        changes["description"] = description or UNDEFINED
    if "filters" in args:
        changes["filters"] = await _checked_filters(ctx, context.team_id, args["filters"])
    if changes:
        changes["updatedAt"] = now_ms()
        await ctx.db.patch(segment["_id"], changes)
    updated = await reread(ctx, segment["_id"])
    if "filters" in changes and changes["filters"] != segment["filters"]:
        await segment_counts.start(ctx, updated)
    return updated


@mutation(args={"segmentId": v.string()})
async def delete(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete the segment (campaigns keep the filters they froze when they were sent)."""
    context = await get_mutation_context(ctx, require="segments:manage")
    segment = await _segment(ctx, context.team_id, args["segmentId"])
    await segment_counts.stop(ctx, segment["_id"])
    await ctx.db.delete(segment["_id"])
