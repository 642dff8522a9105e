"""Mailing-list membership (reference §3.10), at `/api/v1/topics/{listId}/contacts[/{emailOrId}]`
and the same under `/api/v1/mailing-lists/`.

POST subscribes an existing contact (source `public_api`; the list's double opt-in applies),
DELETE removes it (idempotent: `removed` says whether it was a member). Both go through
`lib/list_subscriptions.py`, the single writer of memberships.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.lib.api_key_auth import ApiKeyCaller
from owlat.app.lib.audience import live_document
from owlat.app.lib.emails import normalize_email
from owlat.app.lib.errors import AppError, not_found
from owlat.app.lib.list_subscriptions import subscribe as subscribe_contact
from owlat.app.lib.list_subscriptions import unsubscribe as unsubscribe_contact
from owlat.app.rest_api.contacts import KEY, find_contact
from owlat.app.rest_api.wire import (
    ID_FORMAT,
    ApiError,
    data,
    email_or_id,
    endpoint,
    json_object,
    path_segments,
)
from owlat.runtime import ActionCtx, MutationCtx, QueryCtx, internal, internal_mutation, v

SPELLINGS = ("/api/v1/topics/", "/api/v1/mailing-lists/")


def _path(request: Request, members: int) -> tuple[str, list[str]]:
    """The list id and what follows `contacts/` (`members` segments), checked."""
    path = request.url.path
    prefix = next(p for p in SPELLINGS if p in path)
    segments = path_segments(request, prefix)
    if len(segments) != 2 + members or segments[1] != "contacts":
        raise ApiError(404, "Not found")
    list_id = segments[0]
    if list_id == "":
        raise ApiError(400, "Topic ID is required")
    if list_id is None or not ID_FORMAT.match(list_id):
        raise ApiError(400, "Invalid topic ID format")
    rest = segments[2:]
    if None in rest:
        raise ApiError(400, "Invalid contact ID or email format")
    return list_id, [segment for segment in rest if segment is not None]


async def _mailing_list(ctx: QueryCtx, organization_id: str, list_id: str) -> dict[str, Any]:
    found = await live_document(ctx, "mailingLists", organization_id, list_id)
    if found is None:
        raise not_found("Topic")
    return found


async def _member(ctx: QueryCtx, organization_id: str, key: dict[str, str]) -> dict[str, Any]:
    try:
        return await find_contact(ctx, organization_id, key)
    except AppError:
        if "email" in key:
            raise not_found(f'Contact with email "{key["email"]}"') from None
        raise


@endpoint("topics:write")
async def subscribe_endpoint(ctx: ActionCtx, request: Request, caller: ApiKeyCaller) -> Response:
    list_id, _ = _path(request, 0)
    body = await json_object(request)
    email, contact_id = body.get("email"), body.get("contactId")
    if email is None and contact_id is None:
        raise ApiError(400, "Either email or contactId is required")
    if email is not None:
        try:
            key = {"email": normalize_email(email if isinstance(email, str) else "")}
        except AppError:
            raise ApiError(400, "Invalid email format") from None
    elif isinstance(contact_id, str) and ID_FORMAT.match(contact_id):
        key = {"id": contact_id}
    else:
        raise ApiError(400, "Invalid contactId format")
    result = await ctx.run_mutation(
        internal.rest_api.topics.subscribe,
        {"organizationId": caller.organization_id, "listId": list_id, "key": key},
    )
    return data(result, 201)


@internal_mutation(args={"organizationId": v.id("organizations"), "listId": v.string(), "key": KEY})
async def subscribe(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    organization_id = args["organizationId"]
    mailing_list = await _mailing_list(ctx, organization_id, args["listId"])
    contact = await _member(ctx, organization_id, args["key"])
    result = await subscribe_contact(
        ctx, mailing_list=mailing_list, contact=contact, source="public_api"
    )
    return {
        "success": True,
        "contactId": contact["_id"],
        "topicId": mailing_list["_id"],
        "doiStatus": result.doi_status,
    }


@endpoint("topics:write")
async def unsubscribe_endpoint(ctx: ActionCtx, request: Request, caller: ApiKeyCaller) -> Response:
    list_id, (member,) = _path(request, 1)
    key = email_or_id(member, "Invalid contact ID or email format")
    removed = await ctx.run_mutation(
        internal.rest_api.topics.unsubscribe,
        {"organizationId": caller.organization_id, "listId": list_id, "key": key},
    )
    return data({"success": True, "removed": removed})


@internal_mutation(args={"organizationId": v.id("organizations"), "listId": v.string(), "key": KEY})
async def unsubscribe(ctx: MutationCtx, args: dict[str, Any]) -> bool:
    organization_id = args["organizationId"]
    mailing_list = await _mailing_list(ctx, organization_id, args["listId"])
    contact = await _member(ctx, organization_id, args["key"])
    return await unsubscribe_contact(
        ctx, mailing_list=mailing_list, contact=contact, source="public_api"
    )
