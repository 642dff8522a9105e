"""A contact's timeline (`contactActivities`): one document per event."""

from __future__ import annotations

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
