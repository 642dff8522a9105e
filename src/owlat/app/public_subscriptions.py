"""What the public subscription endpoints and pages do (reference §4, §7.2), as internal
functions keyed by a token instead of a session.

Each answers `{"ok": True, "data": {...}}` or `{"ok": False, "reason", "message",
"status"}` (the HTTP layer, `subscription_routes.py`, turns that into its wire shape).
Unsubscribe and preferences tokens name a contact (`lib/subscription_tokens.py`); the
DOI token is looked up by its hash. Only that contact's organization is ever read.
"""

from __future__ import annotations

import math
from typing import Any

from owlat.app.lib import list_subscriptions as subs
from owlat.app.lib.audience import live_lists, organization_settings
from owlat.app.lib.errors import AppError
from owlat.app.lib.rate_limits import window_count
from owlat.app.lib.session_organization import now_ms
from owlat.app.lib.subscription_tokens import Kind, TokenError, verify_token
from owlat.runtime import MutationCtx, QueryCtx, internal_mutation, internal_query, v

MAX_TOPIC_UPDATES = 100
INVALID_LINK = "Invalid or expired unsubscribe link"
TOO_MANY_UPDATES = f"At most {MAX_TOPIC_UPDATES} topic updates per request"
TOPIC_UPDATE = v.object({"topicId": v.string(), "subscribed": v.boolean()})

Answer = dict[str, Any]


def refused(reason: str, message: str, status: int = 400) -> Answer:
    return {"ok": False, "reason": reason, "message": message, "status": status}


def ok(data: dict[str, Any]) -> Answer:
    return {"ok": True, "data": data}


def _contact_id(kind: Kind, token: str) -> str | Answer:
    """The contact id a `kind` token names, or its refusal."""
    try:
        return verify_token(kind, token)
    except TokenError as exc:
        return refused(exc.reason, INVALID_LINK)


def token_refusal(kind: Kind, token: str) -> Answer | None:
    """The refusal of a `kind` token whose shape, signature (compared in constant time) or
    age is wrong, decided without the database; None for a token Owlat issued."""
    checked = _contact_id(kind, token)
    return None if isinstance(checked, str) else checked


def update_refusal(token: str) -> Answer | None:
    """`update_preferences`' refusal of a token that is not ours (reason `invalid_token`),
    decided without the database."""
    refusal = token_refusal("preferences", token)
    return None if refusal is None else {**refusal, "reason": "invalid_token"}


async def _token_contact(ctx: QueryCtx, kind: Kind, token: str) -> dict[str, Any] | Answer:
    """The live contact of a `kind` token, or a refusal (`Answer`)."""
    contact_id = _contact_id(kind, token)
    if not isinstance(contact_id, str):
        return contact_id
    normalized = ctx.db.normalize_id("contacts", contact_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found.get("deletedAt") is not None:
        return refused("contact_not_found", "Contact not found", 404)
    return dict(found)


def _is_refusal(value: dict[str, Any]) -> bool:
    return value.get("ok") is False


async def _organization_lists(ctx: QueryCtx, organization_id: str) -> list[dict[str, Any]]:
    lists = await live_lists(ctx, organization_id)
    return sorted(lists, key=lambda row: (row.get("displayOrder", math.inf), row["name"]))


def _names(contact: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"email": contact["email"]}
    if contact.get("firstName"):
        data["firstName"] = contact["firstName"]
    return data


# -- rate limit --------------------------------------------------------------------------------


@internal_mutation(args={"key": v.string(), "limit": v.number(), "windowMs": v.number()})
async def take(ctx: MutationCtx, args: dict[str, Any]) -> float | None:
    """Count one request of `key` in its fixed window: None if allowed, else the seconds
    until the window ends (Retry-After)."""
    count, window_end = await window_count(ctx, "subscriptions:" + args["key"], args["windowMs"])
    if count <= args["limit"]:
        return None
    return float(max(1, math.ceil((window_end - now_ms()) / 1000)))


# -- unsubscribe -------------------------------------------------------------------------------


@internal_query(args={"token": v.string()})
async def unsubscribe_details(ctx: QueryCtx, args: dict[str, Any]) -> Answer:
    """`GET /unsub/verify`: the contact, whether it has any membership, the sender name."""
    contact = await _token_contact(ctx, "unsubscribe", args["token"])
    if _is_refusal(contact):
        return contact
    settings = await organization_settings(ctx, contact["organizationId"])
    organization = await ctx.db.get(contact["organizationId"])
    sender = (settings or {}).get("defaultFromName") or (organization or {}).get("name")
    memberships = await subs.memberships_of_contact(ctx, contact["_id"])
    return ok(
        {
            **_names(contact),
            "subscribed": bool(memberships),
            "organizationName": sender or "Unknown",
        }
    )


@internal_mutation(args={"token": v.string()})
async def unsubscribe_all(ctx: MutationCtx, args: dict[str, Any]) -> Answer:
    """One-click unsubscribe: every membership goes and `unsubscribedAt` is set."""
    contact = await _token_contact(ctx, "unsubscribe", args["token"])
    if _is_refusal(contact):
        return contact
    removed = await subs.unsubscribe_all(ctx, contact=contact, source="public_email_link")
    message = (
        f"You have been successfully unsubscribed from {removed} topic(s)"
        if removed
        else "You were already unsubscribed from all topics"
    )
    return ok({"message": message, "listsRemoved": removed})


# -- preferences -------------------------------------------------------------------------------


@internal_query(args={"token": v.string()})
async def preferences(ctx: QueryCtx, args: dict[str, Any]) -> Answer:
    """`GET /prefs/verify`: every list of the organization, with the contact's status
    (`pending: true` added when the membership waits for DOI confirmation)."""
    contact = await _token_contact(ctx, "preferences", args["token"])
    if _is_refusal(contact):
        return contact
    organization = await ctx.db.get(contact["organizationId"])
    statuses = {
        row["listId"]: row["status"]
        for row in await subs.memberships_of_contact(ctx, contact["_id"])
    }
    topics = []
    for mailing_list in await _organization_lists(ctx, contact["organizationId"]):
        topic: dict[str, Any] = {
            "_id": mailing_list["_id"],
            "name": mailing_list["name"],
            "subscribed": mailing_list["_id"] in statuses,
        }
        if mailing_list.get("description"):
            topic["description"] = mailing_list["description"]
        if statuses.get(mailing_list["_id"]) == "pending":
            topic["pending"] = True
        topics.append(topic)
    return ok(
        {
            **_names(contact),
            "teamName": organization["name"] if organization else "Newsletter",
            "topics": topics,
        }
    )


def check_updates(global_unsubscribe: Any, updates: Any) -> Answer | None:
    """The refusal of a malformed `POST /prefs/update` body, if it is one."""
    if global_unsubscribe is not None and not isinstance(global_unsubscribe, bool):
        return refused("globalUnsubscribe_must_be_boolean", "globalUnsubscribe must be a boolean")
    if updates is None:
        return None
    if not isinstance(updates, list):
        return refused("topicUpdates_must_be_array", "topicUpdates must be an array")
    if len(updates) > MAX_TOPIC_UPDATES:
        return refused("too_many_topic_updates", TOO_MANY_UPDATES)
    for update in updates:
        if (
            not isinstance(update, dict)
            or not isinstance(update.get("topicId"), str)
            or not isinstance(update.get("subscribed"), bool)
        ):
            return refused(
                "invalid_topic_update_shape",
                "Each topic update must be {topicId: string, subscribed: boolean}",
            )
    return None


@internal_mutation(
    args={
        "token": v.string(),
        "globalUnsubscribe": v.optional(v.boolean()),
        "topicUpdates": v.optional(v.array(TOPIC_UPDATE)),
    }
)
async def update_preferences(ctx: MutationCtx, args: dict[str, Any]) -> Answer:
    """`POST /prefs/update`: apply all updates or none (an unknown list refuses all).
    Subscribing from the preferences page skips double opt-in (the token came by mail)."""
    if len(args.get("topicUpdates") or []) > MAX_TOPIC_UPDATES:
        return refused("too_many_topic_updates", TOO_MANY_UPDATES)
    refusal = update_refusal(args["token"])
    if refusal is not None:
        return refusal
    contact = await _token_contact(ctx, "preferences", args["token"])
    if _is_refusal(contact):
        return contact
    if args.get("globalUnsubscribe"):
        await subs.unsubscribe_all(ctx, contact=contact, source="preferences_page")
        return ok({"message": "Preferences updated successfully"})
    lists = {row["_id"]: row for row in await _organization_lists(ctx, contact["organizationId"])}
    updates = args.get("topicUpdates") or []
    if any(update["topicId"] not in lists for update in updates):
        return refused("not_found", "Mailing list not found", 404)
    for update in updates:
        mailing_list = lists[update["topicId"]]
        if update["subscribed"]:
            await subs.subscribe(
                ctx,
                mailing_list=mailing_list,
                contact=contact,
                source="preferences_page",
                skip_doi=True,
            )
        else:
            await subs.unsubscribe(
                ctx, mailing_list=mailing_list, contact=contact, source="preferences_page"
            )
    return ok({"message": "Preferences updated successfully"})


# -- double opt-in -----------------------------------------------------------------------------


@internal_query(args={"token": v.string()})
async def doi_details(ctx: QueryCtx, args: dict[str, Any]) -> Answer:
    """`GET /confirm/doi/verify`: whose confirmation this is, and its state (plus
    `teamName`, the organization's name, for the confirmation page)."""
    try:
        contact = await subs.contact_for_doi_token(ctx, args["token"])
    except AppError:
        return refused("invalid_token", "Invalid or expired confirmation token", 404)
    organization = await ctx.db.get(contact["organizationId"])
    team = organization["name"] if organization else "Newsletter"
    if subs.doi_status(contact) == "confirmed":
        return ok({"alreadyConfirmed": True, "contactEmail": contact["email"], "teamName": team})
    data = {"contactEmail": contact["email"], "doiStatus": subs.doi_status(contact)}
    if contact.get("firstName"):
        data["contactFirstName"] = contact["firstName"]
    return ok({**data, "teamName": team})


@internal_mutation(args={"token": v.string()})
async def confirm_doi(ctx: MutationCtx, args: dict[str, Any]) -> Answer:
    """`POST /confirm/doi`: confirm (idempotent)."""
    try:
        result = await subs.confirm_doi(ctx, args["token"])
    except AppError as exc:
        return refused("confirmation_failed", exc.message)
    message = (
        "Your subscription was already confirmed"
        if result.already_confirmed
        else "Your subscription has been confirmed!"
    )
    return ok(
        {
            "alreadyConfirmed": result.already_confirmed,
            "contactEmail": result.email,
            "message": message,
        }
    )
