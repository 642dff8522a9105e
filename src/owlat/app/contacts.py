"""Contacts: the audience of an organization.

A contact's `email` is normalized (trimmed, lower case, valid, at most 254 characters) and
unique among the organization's live contacts. Custom `properties` are typed by the
organization's definitions (`contact_properties.py`). Deleting from the dashboard is a
soft delete (`deletedAt`; hidden everywhere, the address is free again at once) purged
with its activities after 30 days by the `purge_deleted` cron; `hard_delete` removes a
contact and its activities now. Every change is written to the contact's timeline
(`contactActivities`). Reads: any member; writes: `contacts:manage`.
"""

from __future__ import annotations

import re
from typing import Any

from owlat.app.lib.audience import (
    PAGINATION_OPTS,
    clean_email,
    clean_property_value,
    clean_timezone,
    invalid,
    page_options,
    property_definitions,
)
from owlat.app.lib.contact_search import search_page
from owlat.app.lib.errors import not_found
from owlat.app.lib.list_subscriptions import remove_memberships_of_contact
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.session_organization import (
    MutationContext,
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.schema import CONTACT_SOURCE
from owlat.runtime import UNDEFINED, internal, internal_mutation, mutation, query, v

MAX_NAME = 200
MAX_BULK = 100
MAX_SEARCH = 254
RETENTION_MS = 30 * 24 * 60 * 60 * 1000
PURGE_BATCH = 200
LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
_INTERNAL_FIELDS = ("nameKey", "lastNameKey")

PROPERTY_INPUT = v.record(v.string(), v.union(v.string(), v.number(), v.boolean(), v.null()))
FIELDS = {
    "firstName": v.optional(v.union(v.string(), v.null())),
    "lastName": v.optional(v.union(v.string(), v.null())),
    "language": v.optional(v.union(v.string(), v.null())),
    "timezone": v.optional(v.union(v.string(), v.null())),
    "properties": v.optional(PROPERTY_INPUT),
}


def public(contact: dict[str, Any]) -> dict[str, Any]:
    """A contact as functions return it (without the search keys)."""
    return {k: val for k, val in contact.items() if k not in _INTERNAL_FIELDS}


def _clean_name(field: str, value: str) -> str | None:
    value = value.strip()
    if len(value) > MAX_NAME:
        raise invalid("INVALID_NAME", f"{field} must be at most {MAX_NAME} characters")
    return value or None


def _clean_language(value: str) -> str | None:
    value = value.strip()
    if value and not LANGUAGE.match(value):
        raise invalid(
            "INVALID_LANGUAGE", f"Invalid language {value!r}: use a code such as en, de or pt-BR"
        )
    return value or None


def name_keys(first: str | None, last: str | None) -> dict[str, Any]:
    full = " ".join(part for part in (first, last) if part).lower()
    return {
        "nameKey": full or UNDEFINED,
        "lastNameKey": last.lower() if last else UNDEFINED,
    }


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


async def _manager(ctx: Any) -> MutationContext:
    context = await get_mutation_context(ctx)
    require_permission(context.role, "contacts:manage")
    return context


async def organization_contact(
    ctx: Any, organization_id: str, contact_id: str, *, deleted: bool = False
) -> dict[str, Any]:
    """The organization's contact (live unless `deleted`), or "Contact not found"."""
    normalized = ctx.db.normalize_id("contacts", contact_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if (
        found is None
        or found["organizationId"] != organization_id
        or (found.get("deletedAt") is not None and not deleted)
    ):
        raise not_found("Contact")
    return dict(found)


async def live_by_email(ctx: Any, organization_id: str, email: str) -> dict[str, Any] | None:
    rows = (
        await ctx.db.query("contacts")
        .with_index(
            "by_org_email", lambda q: q.eq("organizationId", organization_id).eq("email", email)
        )
        .collect()
    )
    live = [row for row in rows if row.get("deletedAt") is None]
    return dict(live[0]) if live else None


async def record_activity(
    ctx: Any,
    contact: dict[str, Any],
    activity_type: str,
    metadata: dict[str, str] | None,
    user_id: str | None,
    at: float,
) -> None:
    record: dict[str, Any] = {
        "organizationId": contact["organizationId"],
        "contactId": contact["_id"],
        "activityType": activity_type,
        "occurredAt": at,
    }
    if metadata:
        record["metadata"] = metadata
    if user_id is not None:
        record["userId"] = user_id
    await ctx.db.insert("contactActivities", record)


async def _properties(
    ctx: Any, organization_id: str, current: dict[str, Any], changes: dict[str, Any]
) -> dict[str, Any]:
    """`current` with `changes` applied (None removes a value), every value checked."""
    definitions = await property_definitions(ctx, organization_id)
    result = dict(current)
    for key, value in changes.items():
        definition = definitions.get(key)
        if definition is None:
            raise invalid(
                "UNKNOWN_PROPERTY", f'Unknown property "{key}": define it in contact properties'
            )
        if value is None:
            result.pop(key, None)
        else:
            result[key] = clean_property_value(definition, value)
    return result


def clean_fields(args: dict[str, Any]) -> dict[str, Any]:
    """Cleaned built-in fields present in `args` (None: clear the field)."""
    cleaned: dict[str, Any] = {}
    for field, label in (("firstName", "First name"), ("lastName", "Last name")):
        if field in args:
            cleaned[field] = None if args[field] is None else _clean_name(label, args[field])
    if "language" in args:
        cleaned["language"] = (
            None if args["language"] is None else _clean_language(args["language"])
        )
    if "timezone" in args:
        cleaned["timezone"] = None if args["timezone"] is None else clean_timezone(args["timezone"])
    return cleaned


# -- reads --------------------------------------------------------------------------------


@query(args={"paginationOpts": PAGINATION_OPTS, "search": v.optional(v.string())})
async def list_from_session(ctx: Any, args: Any) -> dict[str, Any]:
    """A page of live contacts, newest first; with `search`, those whose email, full name
    ("first last") or last name starts with it (case-insensitive): email matches by
    email, then name matches (index ranges, lib/contact_search.py)."""
    organization_id = await get_team_id_from_session(ctx)
    options = page_options(args["paginationOpts"])
    return await list_contacts(ctx, organization_id, options, args.get("search"))


async def list_contacts(
    ctx: Any, organization_id: str, options: dict[str, Any], search: str | None
) -> dict[str, Any]:
    """`contacts:listFromSession` for an organization (the REST API's list too)."""
    search = (search or "").strip().lower()[:MAX_SEARCH]
    if search:  # index prefix ranges (lib/contact_search.py)
        result = await search_page(ctx, organization_id, search, options)
    else:
        result = await (
            ctx.db.query("contacts")
            .with_index("by_org_created", lambda q: q.eq("organizationId", organization_id))
            .order("desc")
            # live only: an absent field sorts before null in Convex's order
            .filter(lambda q: q.lt(q.field("deletedAt"), None))
            .paginate(options)
        )
    return {**result, "page": [public(dict(c)) for c in result["page"]]}


@query(args={"contactId": v.string()})
async def get(ctx: Any, args: Any) -> dict[str, Any] | None:
    """The contact, or None if it does not exist, is deleted or is another organization's."""
    organization_id = await get_team_id_from_session(ctx)
    normalized = ctx.db.normalize_id("contacts", args["contactId"])
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id or found.get("deletedAt"):
        return None
    return public(dict(found))


@query(args={"contactId": v.string(), "paginationOpts": PAGINATION_OPTS})
async def activities(ctx: Any, args: Any) -> dict[str, Any]:
    """The contact's timeline, newest first (also for a soft-deleted contact)."""
    organization_id = await get_team_id_from_session(ctx)
    contact = await organization_contact(ctx, organization_id, args["contactId"], deleted=True)
    options = page_options(args["paginationOpts"])
    return dict(
        await ctx.db.query("contactActivities")
        .with_index("by_contact", lambda q: q.eq("contactId", contact["_id"]))
        .order("desc")
        .paginate(options)
    )


# -- writes -------------------------------------------------------------------------------


@mutation(
    args={
        "email": v.string(),
        "source": v.optional(CONTACT_SOURCE),
        **FIELDS,
    }
)
async def create_from_session(ctx: Any, args: Any) -> str:
    context = await _manager(ctx)
    source = args.get("source") or "api"
    contact = await create_contact(ctx, context.team_id, args, source, context.user_id)
    return str(contact["_id"])


async def create_contact(
    ctx: Any, organization_id: str, args: dict[str, Any], source: str, user_id: str | None
) -> dict[str, Any]:
    """Insert a contact from `email` and the `FIELDS` of `args` (checked), with its
    "created" activity; returns it. The REST API creates contacts through this too."""
    email = clean_email(args["email"])
    fields = clean_fields(args)
    if await live_by_email(ctx, organization_id, email) is not None:
        raise invalid("CONTACT_EXISTS", f"A contact with email {email} already exists")
    properties = await _properties(ctx, organization_id, {}, args.get("properties") or {})
    now = now_ms()
    record: dict[str, Any] = {
        "organizationId": organization_id,
        "email": email,
        "source": source,
        "properties": properties,
        "createdAt": now,
        "updatedAt": now,
        **{k: val for k, val in fields.items() if val is not None},
    }
    keys = name_keys(record.get("firstName"), record.get("lastName"))
    record.update({k: val for k, val in keys.items() if val is not UNDEFINED})
    contact_id = await ctx.db.insert("contacts", record)
    contact = {**record, "_id": contact_id}
    await record_activity(ctx, contact, "created", {"source": source}, user_id, now)
    return contact


@mutation(
    args={
        "contactId": v.string(),
        "email": v.optional(v.string()),
        "unsubscribed": v.optional(v.boolean()),
        **FIELDS,
    }
)
async def update(ctx: Any, args: Any) -> dict[str, Any]:
    """Change fields (None or "" clears an optional one), properties (None removes a
    value) and the global unsubscribe flag; returns the contact."""
    context = await _manager(ctx)
    contact = await organization_contact(ctx, context.team_id, args["contactId"])
    return await update_contact(ctx, contact, args, context.user_id)


async def update_contact(
    ctx: Any, contact: dict[str, Any], args: dict[str, Any], user_id: str | None
) -> dict[str, Any]:
    """Apply `contacts:update`'s changes in `args` to a live contact (activities included)
    and return it; the REST API updates contacts through this too."""
    organization_id = contact["organizationId"]
    changes: dict[str, Any] = {}
    if args.get("email") is not None:
        email = clean_email(args["email"])
        if email != contact["email"]:
            other = await live_by_email(ctx, organization_id, email)
            if other is not None:
                raise invalid("CONTACT_EXISTS", f"A contact with email {email} already exists")
            changes["email"] = email
    for field, value in clean_fields(args).items():
        if value != contact.get(field):
            changes[field] = UNDEFINED if value is None else value
    now = now_ms()
    old_properties = contact["properties"]
    properties = await _properties(
        ctx, organization_id, old_properties, args.get("properties") or {}
    )
    changed_keys = sorted(
        key
        for key in {*old_properties, *properties}
        if old_properties.get(key) != properties.get(key)
    )
    if changed_keys:
        changes["properties"] = properties
    unsubscribe = args.get("unsubscribed")
    unsubscribed_now = unsubscribe is True and contact.get("unsubscribedAt") is None
    subscribed_now = unsubscribe is False and contact.get("unsubscribedAt") is not None
    if unsubscribed_now:
        changes["unsubscribedAt"] = now
    if subscribed_now:
        changes["unsubscribedAt"] = UNDEFINED
    if not changes:
        return public(contact)
    if "firstName" in changes or "lastName" in changes:
        first = changes.get("firstName", contact.get("firstName"))
        last = changes.get("lastName", contact.get("lastName"))
        changes.update(
            name_keys(None if first is UNDEFINED else first, None if last is UNDEFINED else last)
        )
    changes["updatedAt"] = now
    await ctx.db.patch(contact["_id"], changes)
    fields = [f for f in ("email", "firstName", "lastName", "language", "timezone") if f in changes]
    if fields:
        await record_activity(ctx, contact, "updated", {"fields": ",".join(fields)}, user_id, now)
    for key in changed_keys:
        metadata = {
            "propertyKey": key,
            "oldValue": _text(old_properties.get(key)),
            "newValue": _text(properties.get(key)),
        }
        await record_activity(ctx, contact, "property_updated", metadata, user_id, now)
    if unsubscribed_now:
        await record_activity(ctx, contact, "unsubscribed", {"source": "admin"}, user_id, now)
    if subscribed_now:
        await record_activity(ctx, contact, "subscribed", {"source": "admin"}, user_id, now)
    return public(dict(await ctx.db.get(contact["_id"])))


async def _soft_delete(ctx: Any, context: MutationContext, contact: dict[str, Any]) -> None:
    now = now_ms()
    await ctx.db.patch(
        contact["_id"], {"deletedAt": now, "deletedBy": context.user_id, "updatedAt": now}
    )
    await record_activity(ctx, contact, "deleted", None, context.user_id, now)
    await remove_memberships_of_contact(ctx, contact)


async def hard_delete_contact(ctx: Any, contact_id: str) -> None:
    """Delete a contact with its timeline and events now (also the REST API's delete)."""
    await remove_memberships_of_contact(ctx, {"_id": contact_id})
    for table in ("contactActivities", "events"):
        rows = (
            await ctx.db.query(table)
            .with_index("by_contact", lambda q: q.eq("contactId", contact_id))
            .collect()
        )
        for row in rows:
            await ctx.db.delete(row["_id"])
    await ctx.db.delete(contact_id)


@mutation(args={"contactId": v.string()})
async def delete(ctx: Any, args: Any) -> None:
    """Soft delete: hidden now, purged with its timeline after 30 days."""
    context = await _manager(ctx)
    contact = await organization_contact(ctx, context.team_id, args["contactId"])
    await _soft_delete(ctx, context, contact)


@mutation(args={"contactId": v.string()})
async def hard_delete(ctx: Any, args: Any) -> None:
    """Delete a contact (live or soft-deleted) and its timeline now."""
    context = await _manager(ctx)
    contact = await organization_contact(ctx, context.team_id, args["contactId"], deleted=True)
    await hard_delete_contact(ctx, contact["_id"])


@mutation(args={"contactIds": v.array(v.string())})
async def bulk_delete(ctx: Any, args: Any) -> dict[str, Any]:
    """Soft-delete up to 100 contacts: `{deleted, failed, errors: [{index, error}]}`, where
    `index` is the position of a refused id in `contactIds` (repeated ids count once)."""
    context = await _manager(ctx)
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
async def purge_deleted(ctx: Any, args: Any) -> int:
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
