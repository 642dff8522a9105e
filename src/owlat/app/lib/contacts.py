"""Contacts as other modules use them: the checks of a contact's fields, creating,
updating and deleting one with its timeline, lookups by id and email, and the dashboard's
list. `contacts.py` (the dashboard functions), the REST API (`rest_api/`), events and CSV
imports all go through these, so a contact is written the same way whatever the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypedDict

from owlat.app.lib.activities import record_activity
from owlat.app.lib.audience import (
    clean_email,
    clean_property_value,
    clean_timezone,
    page_options,
    property_definitions,
)
from owlat.app.lib.contact_search import search_page
from owlat.app.lib.documents import reread
from owlat.app.lib.errors import invalid, not_found
from owlat.app.lib.list_subscriptions import remove_memberships_of_contact
from owlat.app.lib.session_organization import get_team_id_from_session, now_ms
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, v

MAX_NAME = 200
MAX_SEARCH = 254
LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
_INTERNAL_FIELDS = ("nameKey", "lastNameKey", "importId")
PROPERTY_INPUT = v.record(v.string(), v.union(v.string(), v.number(), v.boolean(), v.null()))
FIELDS = {
    "firstName": v.optional(v.union(v.string(), v.null())),
    "lastName": v.optional(v.union(v.string(), v.null())),
    "language": v.optional(v.union(v.string(), v.null())),
    "timezone": v.optional(v.union(v.string(), v.null())),
    "properties": v.optional(PROPERTY_INPUT),
}


class ContactFields(TypedDict, total=False):
    """The arguments `FIELDS` validates (None clears a field, or removes a property)."""

    firstName: str | None
    lastName: str | None
    language: str | None
    timezone: str | None
    properties: dict[str, str | float | bool | None]


def public(contact: dict[str, Any]) -> dict[str, Any]:
    """A contact as functions return it (without the search keys and the import that
    created it)."""
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


def _name_keys(first: str | None, last: str | None) -> dict[str, Any]:
    """The search keys of a name (lib/contact_search.py); UNDEFINED: no key."""
    full = " ".join(part for part in (first, last) if part).lower()
    return {
        "nameKey": full or UNDEFINED,
        "lastNameKey": last.lower() if last else UNDEFINED,
    }


def contact_record(
    organization_id: str,
    email: str,
    source: str,
    fields: Mapping[str, Any],
    properties: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    """A new contact's document: its normalized `email`, the cleaned built-in `fields`
    that are set (None ones are left out), checked `properties`, and its name keys."""
    record: dict[str, Any] = {
        "organizationId": organization_id,
        "email": email,
        "source": source,
        "properties": properties,
        "createdAt": now,
        "updatedAt": now,
        **{k: val for k, val in fields.items() if val is not None},
    }
    keys = _name_keys(record.get("firstName"), record.get("lastName"))
    record.update({k: val for k, val in keys.items() if val is not UNDEFINED})
    return record


def contact_patch(
    contact: Mapping[str, Any], changes: Mapping[str, Any], now: float
) -> dict[str, Any]:
    """`changes` of `contact` (UNDEFINED clears a field) as its patch: with the name keys
    when a name changes, and `updatedAt`."""
    patch = dict(changes)
    if "firstName" in changes or "lastName" in changes:
        first = changes.get("firstName", contact.get("firstName"))
        last = changes.get("lastName", contact.get("lastName"))
        patch.update(
            _name_keys(None if first is UNDEFINED else first, None if last is UNDEFINED else last)
        )
    patch["updatedAt"] = now
    return patch


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


async def organization_contact(
    ctx: QueryCtx, organization_id: str, contact_id: str, *, deleted: bool = False
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


async def live_by_email(ctx: QueryCtx, organization_id: str, email: str) -> dict[str, Any] | None:
    return (await live_by_emails(ctx, organization_id, [email])).get(email)


async def live_by_emails(
    ctx: QueryCtx, organization_id: str, emails: list[str]
) -> dict[str, dict[str, Any]]:
    """The live contact of each of `emails` (normalized) that has one, read in one step."""
    keys = [(organization_id, email) for email in emails]
    found = await ctx.db.lookup("contacts", "by_org_email", keys)
    result = {}
    for email, rows in zip(emails, found, strict=True):
        live = [row for row in rows if row.get("deletedAt") is None]
        if live:
            result[email] = dict(live[0])
    return result


async def clean_properties(
    ctx: QueryCtx, organization_id: str, current: dict[str, Any], changes: dict[str, Any]
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


def clean_fields(args: Mapping[str, Any]) -> dict[str, Any]:
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


async def list_contacts(
    ctx: QueryCtx, organization_id: str, options: dict[str, Any], search: str | None
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


async def create_contact(
    ctx: MutationCtx,
    organization_id: str,
    args: Mapping[str, Any],
    source: str,
    user_id: str | None,
) -> dict[str, Any]:
    """Insert a contact from `email` and the `FIELDS` of `args` (checked), with its
    "created" activity; returns it. The REST API creates contacts through this too."""
    email = clean_email(args["email"])
    fields = clean_fields(args)
    if await live_by_email(ctx, organization_id, email) is not None:
        raise invalid("CONTACT_EXISTS", f"A contact with email {email} already exists")
    properties = await clean_properties(ctx, organization_id, {}, args.get("properties") or {})
    now = now_ms()
    record = contact_record(organization_id, email, source, fields, properties, now)
    contact_id = await ctx.db.insert("contacts", record)
    contact = {**record, "_id": contact_id}
    await record_activity(ctx, contact, "created", {"source": source}, user_id, now)
    return contact


async def update_contact(
    ctx: MutationCtx, contact: dict[str, Any], args: Mapping[str, Any], user_id: str | None
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
    properties = await clean_properties(
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
    changes = contact_patch(contact, changes, now)
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
    return public(await reread(ctx, contact["_id"]))


async def hard_delete_contact(ctx: MutationCtx, contact_id: str) -> None:
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


async def contact_rows_page(ctx: QueryCtx, table: str, args: dict[str, Any]) -> dict[str, Any]:
    """A page of `table`'s rows about the caller's organization's contact `contactId` (by
    its `by_contact` index), newest first; also for a soft-deleted contact."""
    return (await contact_and_rows_page(ctx, table, args))[1]


async def contact_and_rows_page(
    ctx: QueryCtx, table: str, args: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`contact_rows_page`, with the contact it read (for a caller that needs it too)."""
    organization_id = await get_team_id_from_session(ctx)
    contact = await organization_contact(ctx, organization_id, args["contactId"], deleted=True)
    page = dict(
        await ctx.db.query(table)
        .with_index("by_contact", lambda q: q.eq("contactId", contact["_id"]))
        .order("desc")
        .paginate(page_options(args["paginationOpts"]))
    )
    return contact, page
