"""The events an organization's webhooks subscribe to, and their fan-out (reference §5).

    email.sent  email.delivered  email.opened  email.clicked  email.bounced
    email.complained  contact.created  contact.updated  contact.deleted

`emit(ctx, organization_id, event, data)` runs in the mutation where the event happened:
for every active webhook of the organization subscribed to `event` it records a delivery
log (`pending`, attempt 1 of `MAX_ATTEMPTS`, the exact body) and schedules its delivery
now, so event and delivery commit or roll back together. The body is upstream's:
`{"event", "timestamp" (ISO 8601, ms, Z), "data"}` in that order, compact JSON; `data`
holds flat values only. Test sends emit nothing.

Who emits: the send lifecycle (`lib/sending/feedback.py`) the email events but
`email.sent`, which `on_send_change` (a trigger on the send tables) emits when a send
becomes `sent`; `on_contact_change` (a trigger on `contacts`) the contact events, whatever
function wrote the contact: created (not for CSV imports, as upstream), updated (the
contact's own fields, not engagement counters), deleted (soft or hard).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any, Final

from owlat.app.lib.call_cache import rows_once
from owlat.app.lib.session_organization import now_ms
from owlat.runtime import Change, MutationCtx, internal

EVENT_TYPES: Final = (
    "email.sent",
    "email.delivered",
    "email.opened",
    "email.clicked",
    "email.bounced",
    "email.complained",
    "contact.created",
    "contact.updated",
    "contact.deleted",
)
TEST_EVENT: Final = "test"
MAX_ATTEMPTS: Final = 3
PAYLOAD_VERSION: Final = 1
# contact fields whose change is a `contact.updated` (engagement flags and counters are not)
_CONTACT_FIELDS: Final = (
    "email", "firstName", "lastName", "language", "timezone", "properties",
    "unsubscribedAt", "doiStatus",
)  # fmt: skip
Data = Mapping[str, str | float | bool | None]


def iso(ms: float) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body(event: str, data: Data, at: float) -> str:
    document = {"event": event, "timestamp": iso(at), "data": dict(data)}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


async def enqueue(
    ctx: MutationCtx, webhook: Mapping[str, Any], event: str, data: Data, at: float
) -> str:
    """A delivery log of `event` to `webhook`, its first attempt scheduled now."""
    log_id = await ctx.db.insert(
        "webhookDeliveryLogs",
        {
            "organizationId": webhook["organizationId"],
            "webhookId": webhook["_id"],
            "event": event,
            "payload": body(event, data, at),
            "payloadVersion": PAYLOAD_VERSION,
            "attemptNumber": 1,
            "maxAttempts": MAX_ATTEMPTS,
            "status": "pending",
            "scheduledAt": at,
            "dueAt": at,
        },
    )
    await ctx.scheduler.run_after(0, internal.webhooks.deliver, {"deliveryLogId": log_id})
    return str(log_id)


async def emit(ctx: MutationCtx, organization_id: str, event: str, data: Data) -> None:
    """Fan `event` out to the organization's active webhooks subscribed to it (read once
    per call)."""
    webhooks = await rows_once(
        ctx,
        "webhooks",
        (organization_id,),
        lambda: (
            ctx.db.query("webhooks")
            .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
            .collect()
        ),
    )
    at = now_ms()
    for webhook in webhooks:
        if webhook["isActive"] and event in webhook["events"]:
            await enqueue(ctx, webhook, event, data, at)


async def on_send_change(ctx: MutationCtx, change: Change) -> None:
    """`email.sent` when a send (any send table) becomes `sent`."""
    new, old = change.new, change.old
    if new is None or new["status"] != "sent" or (old is not None and old["status"] == "sent"):
        return
    if new.get("kind") in ("test", "system"):  # a system mail has no organization
        return
    data = {
        "email": new["email"],
        "sendId": change.id,
        "campaignId": new.get("campaignId"),
        "transactionalEmailId": new.get("transactionalEmailId"),
        "timestamp": iso(new.get("sentAt") or now_ms()),
    }
    await emit(ctx, new["organizationId"], "email.sent", data)


def _contact_data(contact: Mapping[str, Any]) -> dict[str, str | float | bool | None]:
    return {
        "contactId": str(contact["_id"]),
        "email": contact.get("email"),
        "firstName": contact.get("firstName"),
        "lastName": contact.get("lastName"),
        "source": contact.get("source"),
        "timestamp": iso(now_ms()),
    }


async def on_contact_change(ctx: MutationCtx, change: Change) -> None:
    """`contact.created`, `contact.updated` or `contact.deleted` (module docstring)."""
    old, new = change.old, change.new
    if old is None and new is not None:
        if new.get("source") != "import":
            await emit(ctx, new["organizationId"], "contact.created", _contact_data(new))
        return
    if old is not None and (new is None or (new.get("deletedAt") and not old.get("deletedAt"))):
        if not old.get("deletedAt"):
            await emit(ctx, old["organizationId"], "contact.deleted", _contact_data(old))
        return
    if old is None or new is None or new.get("deletedAt"):
        return
    changed = [field for field in _CONTACT_FIELDS if old.get(field) != new.get(field)]
    if changed:
        data = {**_contact_data(new), "changedFields": ",".join(changed)}
        await emit(ctx, new["organizationId"], "contact.updated", data)
