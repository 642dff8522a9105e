"""BetterAuth's `organization` plugin endpoints, answered by the internal `…ViaSession`
twins of the Convex functions (the same code the dashboard calls over the sync socket)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.auth_routes.wire import (
    current_session,
    endpoint,
    iso,
    json_body,
    ok,
    require_session,
    set_session_cookie,
)
from owlat.runtime import ActionCtx, FunctionReference, HttpAction, internal


def organization_json(organization: dict[str, Any] | None) -> dict[str, Any] | None:
    if organization is None:
        return None
    body = {
        "id": organization["_id"],
        "name": organization["name"],
        "slug": organization["slug"],
        "logo": organization.get("logo"),
        "metadata": organization.get("metadata"),
        "createdAt": iso(organization["createdAt"]),
    }
    for nested, shape in (("members", member_json), ("invitations", invitation_json)):
        if nested in organization:
            body[nested] = [shape(item) for item in organization[nested]]
    return body


def member_json(member: dict[str, Any]) -> dict[str, Any]:
    body = {
        "id": member["_id"],
        "organizationId": member["organizationId"],
        "userId": member["userId"],
        "role": member["role"],
        "createdAt": iso(member["createdAt"]),
    }
    if "user" in member:
        body["user"] = member["user"]
    return body


def invitation_json(invitation: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": invitation["_id"],
        "organizationId": invitation["organizationId"],
        "email": invitation["email"],
        "role": invitation["role"],
        "status": invitation["status"],
        "inviterId": invitation["inviterId"],
        "expiresAt": iso(invitation["expiresAt"]),
        "createdAt": iso(invitation["createdAt"]),
    }


def route(
    function: FunctionReference,
    shape: Callable[[Any], Any],
    *,
    method: str = "POST",
    fields: tuple[str, ...] = (),
    resend_cookie: bool = False,
) -> HttpAction:
    """An endpoint that calls `function` (a `…ViaSession` twin) with the cookie's session
    and the request's `fields` (JSON body for POST, query string for GET). A null
    `organizationId` is left out, unless it comes without `organizationSlug`: set-active
    with `{organizationId: null}` clears the active organization."""

    async def handler(ctx: ActionCtx, request: Request) -> Response:
        session, _, token = require_session(await current_session(ctx, request))
        source = await json_body(request) if method == "POST" else dict(request.query_params)
        args = {name: source[name] for name in fields if name in source}
        if (
            "organizationId" in args
            and args["organizationId"] is None
            and "organizationSlug" in args
        ):
            del args["organizationId"]  # alone, a null clears the active organization (set-active)
        kind = ctx.run_query if method == "GET" else ctx.run_mutation
        result = await kind(function, {**args, "sessionId": session["_id"]})
        response = ok(shape(result))
        if resend_cookie:
            set_session_cookie(response, token)
        return response

    handler.__name__ = handler.__qualname__ = str(function).replace(":", "_")
    return endpoint(handler)


organizations = internal.organizations

create = route(
    organizations.create_via_session,
    organization_json,
    fields=("name", "slug", "logo", "metadata", "keepCurrentActiveOrganization"),
)
update = route(
    organizations.update_via_session, organization_json, fields=("organizationId", "data")
)
delete = route(
    organizations.remove_via_session, lambda id_: {"id": id_}, fields=("organizationId",)
)
list_organizations = route(
    organizations.list_mine_via_session,
    lambda items: [organization_json(item) for item in items],
    method="GET",
)
set_active = route(
    organizations.set_active_via_session,
    organization_json,
    fields=("organizationId", "organizationSlug"),
    resend_cookie=True,
)
get_full_organization = route(
    organizations.get_full_via_session,
    organization_json,
    method="GET",
    fields=("organizationId", "organizationSlug"),
)
list_members = route(
    organizations.list_members_via_session,
    lambda items: {"members": [member_json(m) for m in items], "total": len(items)},
    method="GET",
    fields=("organizationId",),
)


invitations = internal.invitations
members = internal.members


def _accepted(result: dict[str, Any]) -> dict[str, Any]:
    member = result["member"]
    return {
        "invitation": invitation_json(result["invitation"]),
        "member": None if member is None else member_json(member),
    }


def _invitation_details(invitation: dict[str, Any]) -> dict[str, Any]:
    return invitation_json(invitation) | {
        key: invitation[key] for key in ("organizationName", "organizationSlug", "inviterEmail")
    }


invite_member = route(
    invitations.invite_via_session,
    invitation_json,
    fields=("email", "role", "organizationId", "resend"),
)
# `token`: the one of the invitation mail's link, which stands for a verified email.
accept_invitation = route(
    invitations.accept_via_session, _accepted, fields=("invitationId", "token"), resend_cookie=True
)
reject_invitation = route(
    invitations.reject_via_session, _accepted, fields=("invitationId", "token")
)
cancel_invitation = route(invitations.cancel_via_session, invitation_json, fields=("invitationId",))
list_invitations = route(
    invitations.list_for_organization_via_session,
    lambda items: [invitation_json(i) for i in items],
    method="GET",
    fields=("organizationId",),
)
list_user_invitations = route(
    invitations.list_mine_via_session,
    lambda items: [invitation_json(i) for i in items],
    method="GET",
)
update_member_role = route(
    members.update_role_via_session, member_json, fields=("memberId", "role", "organizationId")
)
remove_member = route(
    members.remove_via_session,
    lambda result: {"member": member_json(result["member"])},
    fields=("memberIdOrEmail", "organizationId"),
)
leave = route(members.leave_via_session, member_json, fields=("organizationId",))
get_active_member = route(members.get_active_member_via_session, member_json, method="GET")


async def _get_invitation(ctx: ActionCtx, request: Request) -> Response:
    session, _, _ = require_session(await current_session(ctx, request))
    query = request.query_params
    args = {"invitationId": query.get("id", ""), "sessionId": session["_id"]}
    if "token" in query:
        args["token"] = query["token"]
    result = await ctx.run_query(invitations.get_via_session, args)
    return ok(_invitation_details(result))


get_invitation = endpoint(_get_invitation)
