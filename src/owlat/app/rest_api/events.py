"""`POST /api/v1/events` (reference §3.8): record an event of a contact.

Unlike upstream, events are stored (`events` table, read by `events:listForContact` and
`events:list`) and written to the contact's timeline as `event_received`. With
`createContactIfNotExists` an unknown address becomes a contact (source `api`).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.lib.activities import record_activity
from owlat.app.lib.api_key_auth import ApiKeyCaller
from owlat.app.lib.contacts import create_contact, live_by_email
from owlat.app.lib.session_organization import now_ms
from owlat.app.rest_api.wire import (
    FIELD_NAME,
    ApiError,
    checked_email,
    data,
    endpoint,
    json_object,
    primitive,
)
from owlat.app.schema import EVENT_PROPERTY_VALUE
from owlat.runtime import ActionCtx, MutationCtx, internal, internal_mutation, v

EVENT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,99}$")
MAX_PROPERTIES = 100
MAX_STRING = 10_000
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _BASE36[digit] + digits
        if number == 0:
            return digits


def new_event_id(at_ms: float) -> str:
    """`evt_<base36 ms><8 random base36>`."""
    return "evt_" + _base36(int(at_ms)) + "".join(secrets.choice(_BASE36) for _ in range(8))


def _event_name(body: dict[str, Any]) -> str:
    name = body.get("eventName")
    if name is None:
        raise ApiError(400, "eventName is required")
    if not isinstance(name, str):
        raise ApiError(400, "eventName must be a string")
    if not EVENT_NAME.match(name):
        raise ApiError(
            400,
            "eventName must start with a letter and contain only letters, digits, "
            "underscores and hyphens (at most 100 characters)",
        )
    return name


def _properties(body: dict[str, Any]) -> dict[str, Any]:
    properties = body.get("eventProperties")
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise ApiError(400, "eventProperties must be an object")
    if len(properties) > MAX_PROPERTIES:
        raise ApiError(400, f"eventProperties may have at most {MAX_PROPERTIES} keys")
    cleaned = {}
    for key, value in properties.items():
        if not FIELD_NAME.match(key):
            raise ApiError(
                400,
                "eventProperties keys must be 1 to 100 printable ASCII characters "
                "and not start with $",
            )
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise ApiError(400, f"eventProperties.{key} must be at most {MAX_STRING} characters")
        cleaned[key] = primitive(value, f"eventProperties.{key}")
    return cleaned


@endpoint("events:write")
async def send_endpoint(ctx: ActionCtx, request: Request, caller: ApiKeyCaller) -> Response:
    body = await json_object(request)
    email = checked_email(body, "email", "email")
    name = _event_name(body)
    properties = _properties(body)
    create = body.get("createContactIfNotExists")
    if create is not None and not isinstance(create, bool):
        raise ApiError(400, "createContactIfNotExists must be a boolean")
    result = await ctx.run_mutation(
        internal.rest_api.events.record,
        {
            "organizationId": caller.organization_id,
            "email": email,
            "eventName": name,
            "eventProperties": properties,
            "createContactIfNotExists": bool(create),
        },
    )
    if result is None:
        raise ApiError(
            404,
            f'Contact with email "{email}" not found. '
            "Set createContactIfNotExists: true to create the contact automatically.",
        )
    return data(result, 201)


@internal_mutation(
    args={
        "organizationId": v.id("organizations"),
        "email": v.string(),
        "eventName": v.string(),
        "eventProperties": v.record(v.string(), EVENT_PROPERTY_VALUE),
        "createContactIfNotExists": v.boolean(),
    }
)
async def record(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """Store the event (creating the contact if asked); None when the contact is unknown."""
    organization_id = args["organizationId"]
    contact = await live_by_email(ctx, organization_id, args["email"])
    created = contact is None
    if contact is None:
        if not args["createContactIfNotExists"]:
            return None
        contact = await create_contact(ctx, organization_id, {"email": args["email"]}, "api", None)
    now = now_ms()
    event_id = new_event_id(now)
    await ctx.db.insert(
        "events",
        {
            "organizationId": organization_id,
            "eventId": event_id,
            "contactId": contact["_id"],
            "eventName": args["eventName"],
            "eventProperties": args["eventProperties"],
            "source": "api",
            "occurredAt": now,
        },
    )
    await record_activity(
        ctx, contact, "event_received", {"eventName": args["eventName"]}, None, now
    )
    return {
        "eventId": event_id,
        "contactId": contact["_id"],
        "eventName": args["eventName"],
        "triggeredAutomations": 0,
        "contactCreated": created,
    }
