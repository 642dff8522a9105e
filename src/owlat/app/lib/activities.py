"""A contact's timeline (`contactActivities`): one document per event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from owlat.runtime import MutationCtx


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
    ids = await ctx.db.insert_many("contacts", records)
    contacts = [{**record, "_id": new_id} for record, new_id in zip(records, ids, strict=True)]
    activities = [
        activity_record(contact, activity_type, dict(metadata), user_id, contact["createdAt"])
        for contact in contacts
    ]
    await ctx.db.insert_many("contactActivities", activities)
    return contacts
