"""A contact's timeline (`contactActivities`): one document per event, except a contact's
creation by an import, which the import records once (the contact's `importId`): its
timeline shows it as an `imported` entry built from the import (`with_import_entry`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from owlat.runtime import MutationCtx, QueryCtx


def activity_record(
    contact: dict[str, Any],
    activity_type: str,
    metadata: dict[str, str] | None,
    user_id: str | None,
    at: float,
) -> dict[str, Any]:
    """The `contactActivities` document of one event in `contact`'s timeline."""
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
    return record


async def record_activity(
    ctx: MutationCtx,
    contact: dict[str, Any],
    activity_type: str,
    metadata: dict[str, str] | None,
    user_id: str | None,
    at: float,
) -> None:
    record = activity_record(contact, activity_type, metadata, user_id, at)
    await ctx.db.insert("contactActivities", record)


async def insert_contacts(
    ctx: MutationCtx, records: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert new contacts (`records`) with one `insert_many`; returns them with their ids,
    in order (their creation is recorded by the caller)."""
    ids = await ctx.db.insert_many("contacts", records)
    return [{**record, "_id": new_id} for record, new_id in zip(records, ids, strict=True)]


async def insert_created(
    ctx: MutationCtx,
    records: Sequence[dict[str, Any]],
    activity_type: str,
    metadata: dict[str, str],
    user_id: str | None,
) -> list[dict[str, Any]]:
    """Insert new contacts (`records`, their fields), each with its creation activity
    (`activity_type`, `metadata`, at the contact's `createdAt`): one `insert_many` per
    table. Returns the contacts with their ids, in order."""
    contacts = await insert_contacts(ctx, records)
    activities = [
        activity_record(contact, activity_type, dict(metadata), user_id, contact["createdAt"])
        for contact in contacts
    ]
    await ctx.db.insert_many("contactActivities", activities)
    return contacts


async def with_import_entry(
    ctx: QueryCtx, contact: dict[str, Any], page: dict[str, Any]
) -> dict[str, Any]:
    """`page` (the `contact`'s stored activities, newest first) with the `imported` entry of
    the import that created the contact, where a stored `imported` activity would be: after
    every activity at or after the contact's `createdAt`, before the first one earlier (or
    at the end of the last page). The entry has the stored activity's fields, and the
    import's id as its `_id`."""
    if contact.get("importId") is None:
        return page
    contact_id, created = contact["_id"], contact["createdAt"]
    earlier = (
        await ctx.db.query("contactActivities")
        .with_index("by_contact", lambda q: q.eq("contactId", contact_id).lt("occurredAt", created))
        .order("desc")
        .first()
    )
    rows = list(page["page"])
    if earlier is not None:
        at = next((i for i, row in enumerate(rows) if row["_id"] == earlier["_id"]), None)
    else:
        at = len(rows) if page["isDone"] else None
    if at is None:
        return page
    rows.insert(at, await _import_entry(ctx, contact))
    return {**page, "page": rows}


async def _import_entry(ctx: QueryCtx, contact: dict[str, Any]) -> dict[str, Any]:
    import_id = contact["importId"]
    found = await ctx.db.get(import_id)
    metadata = {"importId": str(import_id)}
    user_id = None
    if found is not None and found["organizationId"] == contact["organizationId"]:
        if found.get("listId") is not None:
            metadata["listId"] = found["listId"]
        user_id = found.get("createdBy")
    entry = activity_record(contact, "imported", metadata, user_id, contact["createdAt"])
    return {"_id": str(import_id), "_creationTime": contact["_creationTime"], **entry}
