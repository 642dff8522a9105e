"""A campaign's fields, its preflight and its audience (reference §7.5, §9).

Preflight (`refusals`: all of them, each with the field it concerns; `preflight`: the
first one raised; each an INVALID_STATE-class error with its
own code): NO_TEMPLATE (none chosen, or deleted), TEMPLATE_NOT_PUBLISHED, NO_AUDIENCE (none
chosen, or its list or segment deleted), SENDING_NOT_ALLOWED (the organization's abuse
status is suspended or banned) and NO_DELIVERY_PROVIDER (the campaign route names no enabled
provider: `sending/intake.py`), NO_FROM_EMAIL (neither the campaign nor the
organization's settings give one), INVALID_SENDER / SENDER_DOMAIN_NOT_VERIFIED (the From
domain must be a verified sending domain of the organization unless every provider of
the campaign route is a local sink: `sends.check_sender`, the transactional rule),
SENDER_NOT_ALLOWED (not an enabled curated sender: `senders.py`),
EMPTY_AUDIENCE (nobody in the list or segment).

Eligibility (`ineligible`, §9 and §10.2) of an audience entry, checked when walked and
again when its send is claimed: the contact exists, is not deleted, has not unsubscribed
from all marketing mail (`unsubscribedAt`), is not on the suppression list (any reason);
for a list audience, its membership exists and is `subscribed` (not waiting for double
opt-in confirmation). Segment audiences are not gated by double opt-in (upstream).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from owlat.app.lib.audience import blocked_entries, organization_settings, property_definitions
from owlat.app.lib.campaigns import senders
from owlat.app.lib.campaigns.ab_tests import check_variant
from owlat.app.lib.email_providers.routing import MessageType
from owlat.app.lib.errors import AppError, invalid, not_found
from owlat.app.lib.segment_filters import Predicate, compile
from owlat.app.lib.sending.composition import CompositionError, SendKind, format_address, mailbox
from owlat.app.lib.sending.intake import abuse_block, no_provider
from owlat.app.lib.sending.routes import enabled_providers, route_for
from owlat.app.lib.sending.sends import check_sender
from owlat.app.lib.sending.suppression import suppression_reason
from owlat.app.lib.templates import find_template
from owlat.runtime import QueryCtx

MAX_NAME = 200
MAX_HEADER = 200  # fromName, replyTo (upstream: control characters stripped, ≤ 200)
MAX_SUBJECT = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise invalid("INVALID_NAME", f"Campaign name must be 1 to {MAX_NAME} characters")
    return name


def clean_header(value: str, field: str, limit: int = MAX_HEADER) -> str:
    """`value` with control characters replaced by spaces, trimmed, at most `limit`."""
    cleaned = " ".join(_CONTROL.sub(" ", value).split())
    if len(cleaned) > limit:
        raise invalid(f"INVALID_{_snake(field)}", f"{field} must be at most {limit} characters")
    return cleaned


def clean_address(value: str, field: str) -> str:
    """An email address (one mailbox, ASCII), lower-cased domain; else INVALID_<FIELD>."""
    cleaned = clean_header(value, field)
    try:
        return str(mailbox(cleaned, field).addr_spec)
    except CompositionError as error:
        raise invalid(f"INVALID_{_snake(field)}", str(error)) from None


def _snake(field: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", field).upper()


async def campaign_of(ctx: QueryCtx, organization_id: str, campaign_id: str) -> dict[str, Any]:
    """The organization's campaign, or "Campaign not found"."""
    normalized = ctx.db.normalize_id("campaigns", campaign_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id:
        raise not_found("Campaign")
    return dict(found)


async def checked_audience(
    ctx: QueryCtx, organization_id: str, audience: Mapping[str, Any]
) -> dict[str, Any]:
    """`audience` when its list (live) or segment belongs to the organization."""
    if audience["kind"] == "list":
        found = await _owned(ctx, organization_id, "mailingLists", audience["listId"])
        if found is None or found.get("deletedAt") is not None:
            raise not_found("Mailing list")
        return {"kind": "list", "listId": found["_id"]}
    found = await _owned(ctx, organization_id, "segments", audience["segmentId"])
    if found is None:
        raise not_found("Segment")
    return {"kind": "segment", "segmentId": found["_id"]}


async def _owned(
    ctx: QueryCtx, organization_id: str, table: str, document_id: str
) -> dict[str, Any] | None:
    normalized = ctx.db.normalize_id(table, document_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    return None if found is None or found["organizationId"] != organization_id else dict(found)


async def from_address(ctx: QueryCtx, campaign: Mapping[str, Any]) -> str:
    """The From header value: the campaign's address and name, else the settings'."""
    settings = await organization_settings(ctx, campaign["organizationId"]) or {}
    email = campaign.get("fromEmail") or settings.get("defaultFromEmail")
    if not email:
        raise invalid(
            "NO_FROM_EMAIL",
            "The campaign has no From address: set one, or a default sender in the settings",
        )
    name = campaign.get("fromName") if campaign.get("fromEmail") else None
    name = name or settings.get("defaultFromName") or ""
    try:
        return str(mailbox(format_address(name, email), "From"))
    except CompositionError as error:
        raise invalid("INVALID_SENDER", str(error)) from None


Problem = dict[str, str]


def problem(field: str, error: AppError) -> Problem:
    """A refusal as the editor shows it: `{code, field, message}`; `field` is the
    `campaigns:update` argument (or `abTest`) it concerns."""
    return {"code": error.error_code, "field": field, "message": str(error.data)}


Refusal = tuple[str, AppError]  # the field it concerns, the error


async def refusals(ctx: QueryCtx, campaign: Mapping[str, Any]) -> tuple[list[Refusal], Any]:
    """Every preflight refusal (module docstring) with its field, in the order `preflight`
    raises them, and what sending needs when there is none: `{template, audience,
    fromAddress}` with the audience frozen (a segment's filters copied)."""
    found: list[Refusal] = []

    def refuse(field: str, code: str, message: str) -> None:
        found.append((field, invalid(code, message)))

    organization_id = campaign["organizationId"]
    template_id = campaign.get("emailTemplateId")
    template = (
        None if template_id is None else await find_template(ctx, organization_id, template_id)
    )
    if template is None:
        refuse("emailTemplateId", "NO_TEMPLATE", "Choose the campaign's email template first")
    elif template.get("status") != "published":
        message = f'Publish the template "{template["name"]}" before sending'
        refuse("emailTemplateId", "TEMPLATE_NOT_PUBLISHED", message)
    if campaign.get("isABTest"):
        try:
            await check_variant(ctx, campaign)
        except AppError as error:
            found.append(("abTest", error))
    audience: dict[str, Any] | None = None
    if campaign.get("audience") is None:
        message = "Choose the campaign's audience (a list or a segment) first"
        refuse("audience", "NO_AUDIENCE", message)
    else:
        try:
            audience = await checked_audience(ctx, organization_id, campaign["audience"])
        except AppError as error:
            refuse("audience", "NO_AUDIENCE", f"The campaign's audience is gone: {error.data}")
    for code, blocked in (
        ("SENDING_NOT_ALLOWED", await abuse_block(ctx, organization_id)),
        ("NO_DELIVERY_PROVIDER", await no_provider(ctx, organization_id, MessageType.CAMPAIGN)),
    ):
        if blocked is not None:
            refuse("sending", code, blocked)
    sender: str | None = None
    try:
        sender = await from_address(ctx, campaign)
        refused = await senders.refusal(ctx, organization_id, mailbox(sender, "From").addr_spec)
        if refused is not None:
            raise invalid("SENDER_NOT_ALLOWED", refused)
        route = await route_for(ctx, organization_id, MessageType.CAMPAIGN)
        await check_sender(ctx, organization_id, sender, enabled_providers(route))
    except AppError as error:
        found.append(("fromEmail", error))
    if audience is not None:
        if audience["kind"] == "segment":
            segment = await ctx.db.get(audience["segmentId"])
            assert segment is not None
            audience["frozenFilters"] = segment["filters"]
        if not await _anyone(ctx, organization_id, audience):
            refuse("audience", "EMPTY_AUDIENCE", "The campaign's audience has nobody in it")
    if found:
        return found, None
    return [], {"template": template, "audience": audience, "fromAddress": sender}


async def preflight(ctx: QueryCtx, campaign: Mapping[str, Any]) -> dict[str, Any]:
    """What sending needs (`refusals`), or the first refusal raised."""
    found, checked = await refusals(ctx, campaign)
    if found:
        raise found[0][1]
    return dict(checked)


async def _anyone(ctx: QueryCtx, organization_id: str, audience: Mapping[str, Any]) -> bool:
    if audience["kind"] == "list":
        mailing_list = await ctx.db.get(audience["listId"])
        return mailing_list is not None and mailing_list["memberCount"] > 0
    predicate = await segment_predicate(ctx, organization_id, audience, 0)
    return (await _segment_query(ctx, organization_id, predicate).first()) is not None


async def segment_predicate(
    ctx: QueryCtx, organization_id: str, audience: Mapping[str, Any], now: float
) -> Predicate:
    definitions = await property_definitions(ctx, organization_id)
    return compile(audience["frozenFilters"], definitions, now)


def _segment_query(ctx: QueryCtx, organization_id: str, predicate: Predicate) -> Any:
    return (
        ctx.db.query("contacts")
        .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
        .filter(predicate)
    )


async def audience_page(
    ctx: QueryCtx,
    organization_id: str,
    audience: Mapping[str, Any],
    cursor: str | None,
    size: int,
    now: float,
) -> tuple[list[dict[str, Any]], int, str, bool]:
    """One keyset page of the audience: (its eligible contacts, how many entries were
    read, the next cursor, done)."""
    contacts: list[dict[str, Any]] = []
    options = {"numItems": size, "cursor": cursor}
    if audience["kind"] == "list":
        page = await (
            ctx.db.query("mailingListMembers")
            .with_index("by_list", lambda q: q.eq("listId", audience["listId"]))
            .paginate(options)
        )
        members = page["page"]
        found = [await ctx.db.get(member["contactId"]) for member in members]
        entries = [(c, m) for c, m in zip(found, members, strict=True) if c is not None]
    else:
        predicate = await segment_predicate(ctx, organization_id, audience, now)
        page = await _segment_query(ctx, organization_id, predicate).paginate(options)
        entries = [(contact, None) for contact in page["page"]]
    for (contact, _), why in zip(entries, await ineligible_all(ctx, entries), strict=True):
        if why is None:
            contacts.append(dict(contact))
    return contacts, len(page["page"]), page["continueCursor"], page["isDone"]


async def ineligible(
    ctx: QueryCtx, contact: Mapping[str, Any] | None, membership: Mapping[str, Any] | None
) -> str | None:
    """Why `contact` must not get the campaign now (module docstring), or None.
    `membership`: its row in the campaign's list (None for a segment audience)."""
    return (await ineligible_all(ctx, [(contact, membership)]))[0]


async def ineligible_all(
    ctx: QueryCtx,
    entries: Sequence[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]],
) -> list[str | None]:
    """`ineligible` of each (contact, membership) of `entries`, in order, the suppression
    list read in one step for all of them (`audience.blocked_entries`)."""
    live = [contact for contact, _ in entries if contact is not None]
    blocked = await blocked_entries(ctx, [(c["organizationId"], c["email"]) for c in live])
    entry_of = {id(contact): entry for contact, entry in zip(live, blocked, strict=True)}
    reasons: list[str | None] = []
    for contact, membership in entries:
        if contact is None or contact.get("deletedAt") is not None:
            reasons.append("The contact was deleted")
        elif membership is not None and membership["status"] != "subscribed":
            email = contact["email"]
            reasons.append(f"{email} has not confirmed the subscription (double opt-in)")
        else:
            entry = entry_of[id(contact)]
            reasons.append(
                suppression_reason(
                    SendKind.CAMPAIGN,
                    contact["email"],
                    None if entry is None else entry["reason"],
                    contact.get("unsubscribedAt") is not None,
                )
            )
    return reasons
