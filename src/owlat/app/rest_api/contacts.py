"""`/api/v1/contacts` (reference §3.4–3.7): list, create, get, update, hard delete.

Each endpoint checks the request's shape, then runs one internal function with the API
key's organization; that function uses the shared contact code (`owlat.app.lib.contacts`).
`{idOrEmail}` is looked up by normalized address when it is one, else as a contact id; a
contact of another organization, a soft-deleted one or an id of another table is
`Contact not found`.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.lib.api_key_auth import ApiKeyCaller
from owlat.app.lib.contacts import (
    MAX_NAME,
    create_contact,
    hard_delete_contact,
    list_contacts,
    live_by_email,
    organization_contact,
    update_contact,
)
from owlat.app.lib.errors import AppError, not_found
from owlat.app.rest_api.wire import (
    ApiError,
    checked_email,
    data,
    email_or_id,
    endpoint,
    iso,
    json_object,
    path_segments,
)
from owlat.runtime import (
    UNDEFINED,
    ActionCtx,
    JSONResponse,
    MutationCtx,
    QueryBuildError,
    QueryCtx,
    internal,
    internal_mutation,
    internal_query,
    v,
)

PREFIX = "/api/v1/contacts/"
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
MAX_CURSOR = 2000
BAD_KEY = "Invalid contact ID or email format"
EXISTS = "A contact with this email already exists"
_DIGITS = re.compile(r"^[0-9]+$")
_CURSOR = re.compile(r"^[A-Za-z0-9_|-]+$")

KEY = v.object({"email": v.optional(v.string()), "id": v.optional(v.string())})
NAME = v.optional(v.union(v.string(), v.null()))


def resource(contact: dict[str, Any]) -> dict[str, Any]:
    """A contact as the REST API shows it (core fields only)."""
    return {
        "id": contact["_id"],
        "email": contact["email"],
        "firstName": contact.get("firstName"),
        "lastName": contact.get("lastName"),
        "source": contact["source"],
        "createdAt": iso(contact["createdAt"]),
        "updatedAt": iso(contact["updatedAt"]),
    }


async def find_contact(ctx: QueryCtx, organization_id: str, key: dict[str, str]) -> dict[str, Any]:
    """The organization's live contact named by `key`, or `Contact not found`."""
    if "email" in key:
        found = await live_by_email(ctx, organization_id, key["email"])
        if found is None:
            raise not_found("Contact")
        return found
    return await organization_contact(ctx, organization_id, key["id"])


def _names(body: dict[str, Any]) -> dict[str, str | None]:
    """The `firstName` / `lastName` present in `body` (null clears), checked."""
    names: dict[str, str | None] = {}
    for field in ("firstName", "lastName"):
        if field not in body:
            continue
        value = body[field]
        if value is not None and not isinstance(value, str):
            raise ApiError(400, f"{field} must be a string")
        if value is not None and len(value.strip()) > MAX_NAME:
            raise ApiError(400, f"{field} must be at most {MAX_NAME} characters")
        names[field] = value
    return names


def _key(request: Request) -> dict[str, str]:
    segments = path_segments(request, PREFIX)
    if len(segments) != 1 or segments[0] is None:
        raise ApiError(400, BAD_KEY)
    return email_or_id(segments[0], BAD_KEY)


# -- list ------------------------------------------------------------------------------------


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    digits = text.strip()
    significant = digits.lstrip("0")
    if not _DIGITS.match(digits) or not significant:
        raise ApiError(400, "Invalid limit")
    return MAX_LIMIT if len(significant) > 3 else min(int(significant), MAX_LIMIT)


@endpoint("contacts:read")
async def list_endpoint(ctx: ActionCtx, request: Request, caller: ApiKeyCaller) -> Response:
    params = request.query_params
    limit = _limit(params.get("limit"))
    cursor = params.get("cursor") or None
    if cursor is not None and (len(cursor) > MAX_CURSOR or not _CURSOR.match(cursor)):
        raise ApiError(400, "Invalid cursor")
    result = await ctx.run_query(
        internal.rest_api.contacts.list_page,
        {
            "organizationId": caller.organization_id,
            "numItems": limit,
            "cursor": cursor,
            "search": params.get("search") or "",
        },
    )
    if result is None:
        raise ApiError(400, "Invalid cursor")
    done = result["isDone"]
    pagination = {
        "limit": limit,
        "totalItems": result["totalItems"],
        "cursor": None if done else result["continueCursor"],
        "isDone": done,
    }
    return JSONResponse({"data": result["page"], "pagination": pagination})


@internal_query(
    args={
        "organizationId": v.id("organizations"),
        "numItems": v.number(),
        "cursor": v.union(v.string(), v.null()),
        "search": v.string(),
    }
)
async def list_page(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """A page of live contacts as the dashboard lists them, with the live total; None when
    the cursor is not one of ours."""
    organization_id = args["organizationId"]
    options = {"numItems": int(args["numItems"]), "cursor": args["cursor"]}
    try:
        result = await list_contacts(ctx, organization_id, options, args["search"])
    except QueryBuildError:
        return None
    except AppError as error:  # a search cursor that is not one
        if error.error_code == "INVALID_CURSOR":
            return None
        raise
    total = (
        await ctx.db.query("contacts")
        .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
        .filter(lambda q: q.eq(q.field("deletedAt"), UNDEFINED))
        .count()
    )
    return {
        "page": [resource(contact) for contact in result["page"]],
        "isDone": result["isDone"],
        "continueCursor": result["continueCursor"],
        "totalItems": total,
    }


# -- create ----------------------------------------------------------------------------------


@endpoint("contacts:write")
async def create_endpoint(ctx: ActionCtx, request: Request, caller: ApiKeyCaller) -> Response:
    body = await json_object(request)
    email = checked_email(body, "email", "Email")
    names = _names(body)
    result = await ctx.run_mutation(
        internal.rest_api.contacts.create,
        {"organizationId": caller.organization_id, "email": email, **names},
    )
    if result is None:
        raise ApiError(409, EXISTS)
    return data(result, 201)


@internal_mutation(
    args={
        "organizationId": v.id("organizations"),
        "email": v.string(),
        "firstName": NAME,
        "lastName": NAME,
    }
)
async def create(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """A new contact with source `api` (its "created" activity included); None when a live
    contact has the address."""
    organization_id = args["organizationId"]
    if await live_by_email(ctx, organization_id, args["email"]) is not None:
        return None
    return resource(await create_contact(ctx, organization_id, dict(args), "api", None))


# -- get, update, delete ---------------------------------------------------------------------


@endpoint("contacts:read")
async def get_endpoint(ctx: ActionCtx, request: Request, caller: ApiKeyCaller) -> Response:
    key = _key(request)
    found = await ctx.run_query(
        internal.rest_api.contacts.get_one, {"organizationId": caller.organization_id, "key": key}
    )
    return data(found)


@internal_query(args={"organizationId": v.id("organizations"), "key": KEY})
async def get_one(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    return resource(await find_contact(ctx, args["organizationId"], args["key"]))


@endpoint("contacts:write")
async def update_endpoint(ctx: ActionCtx, request: Request, caller: ApiKeyCaller) -> Response:
    key = _key(request)
    body = await json_object(request)
    changes: dict[str, Any] = _names(body)
    if "email" in body:
        if body["email"] is None:
            raise ApiError(400, "email must be a string")
        changes["email"] = checked_email(body, "email", "email")
    result = await ctx.run_mutation(
        internal.rest_api.contacts.update,
        {"organizationId": caller.organization_id, "key": key, **changes},
    )
    if "conflict" in result:
        raise ApiError(409, f"{EXISTS}: {result['conflict']}")
    return data(result["contact"])


@internal_mutation(
    args={
        "organizationId": v.id("organizations"),
        "key": KEY,
        "email": v.optional(v.string()),
        "firstName": NAME,
        "lastName": NAME,
    }
)
async def update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """`{"contact"}` after the change, or `{"conflict": email}` when another live contact
    has the new address."""
    organization_id = args["organizationId"]
    contact = await find_contact(ctx, organization_id, args["key"])
    email = args.get("email")
    if email is not None and email != contact["email"]:
        other = await live_by_email(ctx, organization_id, email)
        if other is not None:
            return {"conflict": email}
    changes: dict[str, Any] = {k: args[k] for k in ("email", "firstName", "lastName") if k in args}
    return {"contact": resource(await update_contact(ctx, contact, changes, None))}


@endpoint("contacts:write")
async def delete_endpoint(ctx: ActionCtx, request: Request, caller: ApiKeyCaller) -> Response:
    key = _key(request)
    contact_id = await ctx.run_mutation(
        internal.rest_api.contacts.remove, {"organizationId": caller.organization_id, "key": key}
    )
    return data({"id": contact_id, "deleted": True})


@internal_mutation(args={"organizationId": v.id("organizations"), "key": KEY})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Hard-delete the live contact (timeline and events too); returns its id."""
    contact = await find_contact(ctx, args["organizationId"], args["key"])
    await hard_delete_contact(ctx, contact["_id"])
    return str(contact["_id"])
