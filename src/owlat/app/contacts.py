"""Contacts: the audience of an organization.

A contact's `email` is normalized (trimmed, lower case, valid, at most 254 characters) and
unique among the organization's live contacts. Custom `properties` are typed by the
organization's definitions (`contact_properties.py`). Deleting from the dashboard is a
soft delete (`deletedAt`; hidden everywhere, the address is free again at once) purged
with its activities after 30 days by the `purge_deleted` cron; `hard_delete` removes a
contact and its activities now. Every change is written to the contact's timeline
(`contactActivities`), but an import's creation of it, which `activities` shows from the
import (lib/activities.py). Reads: any member; writes: `contacts:manage`.
"""

from __future__ import annotations

from typing import Any, Required

from owlat.app.lib.activities import record_activity, with_import_entry
from owlat.app.lib.audience import PAGINATION_OPTS, page_options
from owlat.app.lib.contacts import (
    FIELDS,
    ContactFields,
    contact_and_rows_page,
    create_contact,
    hard_delete_contact,
    list_contacts,
    organization_contact,
    public,
    update_contact,
)
from owlat.app.lib.errors import invalid
from owlat.app.lib.list_subscriptions import remove_memberships_of_contact
from owlat.app.lib.session_organization import (
    MutationContext,
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.schema import CONTACT_SOURCE
from owlat.runtime import MutationCtx, QueryCtx, internal, internal_mutation, mutation, query, v

MAX_BULK = 100
RETENTION_MS = 30 * 24 * 60 * 60 * 1000
PURGE_BATCH = 200


class CreateArgs(ContactFields, total=False):
    """`create_from_session`'s arguments, as its validators let them through."""

    email: Required[str]
    source: str


class UpdateArgs(ContactFields, total=False):
    """`update`'s arguments, as its validators let them through."""

    contactId: Required[str]
    email: str
    unsubscribed: bool


# -- reads --------------------------------------------------------------------------------


@query(args={"paginationOpts": PAGINATION_OPTS, "search": v.optional(v.string())})
async def list_from_session(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A page of live contacts, newest first; with `search`, those whose email, full name
    ("first last") or last name starts with it (case-insensitive): email matches by
    email, then name matches (index ranges, lib/contact_search.py)."""
    organization_id = await get_team_id_from_session(ctx)
    options = page_options(args["paginationOpts"])
    return await list_contacts(ctx, organization_id, options, args.get("search"))


@query(args={"contactId": v.string()})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The contact, or None if it does not exist, is deleted or is another organization's."""
    organization_id = await get_team_id_from_session(ctx)
    normalized = ctx.db.normalize_id("contacts", args["contactId"])
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id or found.get("deletedAt"):
        return None
    return public(dict(found))


@query(args={"contactId": v.string(), "paginationOpts": PAGINATION_OPTS})
async def activities(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The contact's timeline, newest first (also for a soft-deleted contact), with the
    `imported` entry of the import that created it."""
    contact, page = await contact_and_rows_page(ctx, "contactActivities", args)
    return await with_import_entry(ctx, contact, page)


# -- writes -------------------------------------------------------------------------------


@mutation(
    args={
        "email": v.string(),
        "source": v.optional(CONTACT_SOURCE),
        **FIELDS,
    }
)
async def create_from_session(ctx: MutationCtx, args: CreateArgs) -> str:
    context = await get_mutation_context(ctx, require="contacts:manage")
    source = args.get("source") or "api"
    contact = await create_contact(ctx, context.team_id, args, source, context.user_id)
    return str(contact["_id"])


@mutation(
    args={
        "contactId": v.string(),
        "email": v.optional(v.string()),
        "unsubscribed": v.optional(v.boolean()),
        **FIELDS,
    }
)
async def update(ctx: MutationCtx, args: UpdateArgs) -> dict[str, Any]:
    """Change fields (None or "" clears an optional one), properties (None removes a
    value) and the global unsubscribe flag; returns the contact."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    contact = await organization_contact(ctx, context.team_id, args["contactId"])
    return await update_contact(ctx, contact, args, context.user_id)


async def _soft_delete(ctx: MutationCtx, context: MutationContext, contact: dict[str, Any]) -> None:
    now = now_ms()
    await ctx.db.patch(
        contact["_id"], {"deletedAt": now, "deletedBy": context.user_id, "updatedAt": now}
    )
    await record_activity(ctx, contact, "deleted", None, context.user_id, now)
    await remove_memberships_of_contact(ctx, contact)


@mutation(args={"contactId": v.string()})
async def delete(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Soft delete: hidden now, purged with its timeline after 30 days."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    contact = await organization_contact(ctx, context.team_id, args["contactId"])
    await _soft_delete(ctx, context, contact)


@mutation(args={"contactId": v.string()})
async def hard_delete(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete a contact (live or soft-deleted) and its timeline now."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    contact = await organization_contact(ctx, context.team_id, args["contactId"], deleted=True)
    await hard_delete_contact(ctx, contact["_id"])


@mutation(args={"contactIds": v.array(v.string())})
async def bulk_delete(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Soft-delete up to 100 contacts: `{deleted, failed, errors: [{index, error}]}`, where
    `index` is the position of a refused id in `contactIds` (repeated ids count once)."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    contact_ids = args["contactIds"]
    if not contact_ids or len(contact_ids) > MAX_BULK:
        raise invalid("INVALID_BULK_SIZE", f"Pass 1 to {MAX_BULK} contact ids")
    deleted, errors, seen = 0, [], set()
    for index, contact_id in enumerate(contact_ids):
        if contact_id in seen:
            continue
        seen.add(contact_id)
        normalized = ctx.db.normalize_id("contacts", contact_id)
        found = None if normalized is None else await ctx.db.get(normalized)
        if found is None or found["organizationId"] != context.team_id or found.get("deletedAt"):
            errors.append({"index": index, "error": "Contact not found"})
            continue
        await _soft_delete(ctx, context, dict(found))
        deleted += 1
    result: dict[str, Any] = {"deleted": deleted, "failed": len(errors)}
    if errors:
        result["errors"] = errors
    return result


@internal_mutation(args={})
async def purge_deleted(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Hard-delete contacts soft-deleted more than 30 days ago (a batch; schedules the
    next batch while more remain). Returns how many were purged."""
    cutoff = now_ms() - RETENTION_MS
    batch = (
        await ctx.db.query("contacts")
        .with_index("by_deleted_at", lambda q: q.gt("deletedAt", 0).lt("deletedAt", cutoff))
        .take(PURGE_BATCH)
    )
    for contact in batch:
        await hard_delete_contact(ctx, contact["_id"])
    if len(batch) == PURGE_BATCH:
        await ctx.scheduler.run_after(0, internal.contacts.purge_deleted, {})
    return len(batch)
