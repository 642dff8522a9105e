"""Mailing lists (upstream "topics", reference §7.2) and their members.

Names are unique per organization (case-insensitive, at most 200 characters);
descriptions at most 5000. `requireDoubleOptIn` defaults to true. Memberships are written
only by `lib/list_subscriptions.py` (counts and `contacts.mailingListIds` stay exact).
Deleting a list hides it at once (`deletedAt`) and removes its memberships in batches of
`PURGE_BATCH` through the scheduled `purge_members`. Reads: any member; writes:
`lists:manage`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from owlat.app.lib import list_subscriptions as subs
from owlat.app.lib import mailer
from owlat.app.lib.audience import (
    PAGINATION_OPTS,
    is_suppressed,
    live_document,
    live_lists,
    page_options,
)
from owlat.app.lib.documents import reread
from owlat.app.lib.errors import conflict, invalid, not_found
from owlat.app.lib.session_organization import (
    MutationContext,
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.lib.subscription_tokens import confirm_link
from owlat.app.lib.tokens import token_hash
from owlat.runtime import (
    UNDEFINED,
    ActionCtx,
    MutationCtx,
    QueryCtx,
    internal,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
    v,
)

MAX_NAME = 200
MAX_DESCRIPTION = 5000
MAX_BULK = 100
PURGE_BATCH = 200

OPTIONAL_FIELDS = {
    "description": v.optional(v.union(v.string(), v.null())),
    "requireDoubleOptIn": v.optional(v.boolean()),
    "displayOrder": v.optional(v.union(v.number(), v.null())),
    "isDefault": v.optional(v.boolean()),
}


async def _list(ctx: QueryCtx, organization_id: str, list_id: str) -> dict[str, Any]:
    found = await live_document(ctx, "mailingLists", organization_id, list_id)
    if found is None:
        raise not_found("Mailing list")
    return dict(found)


async def _contact(ctx: QueryCtx, organization_id: str, contact_id: str) -> dict[str, Any]:
    found = await live_document(ctx, "contacts", organization_id, contact_id)
    if found is None:
        raise not_found("Contact")
    return dict(found)


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise invalid("INVALID_NAME", f"Name must be 1 to {MAX_NAME} characters")
    return name


def _clean_description(description: str | None) -> str | None:
    description = (description or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise invalid(
            "INVALID_DESCRIPTION", f"Description must be at most {MAX_DESCRIPTION} characters"
        )
    return description or None


async def _unique_name(
    ctx: QueryCtx, organization_id: str, name: str, except_id: str | None = None
) -> None:
    for row in await live_lists(ctx, organization_id):
        if row["_id"] != except_id and row["name"].lower() == name.lower():
            raise invalid("LIST_EXISTS", f'A mailing list named "{row["name"]}" already exists')


def _optional_changes(args: dict[str, Any]) -> dict[str, Any]:
    """Changes of the optional fields present in `args` (None clears)."""
    changes: dict[str, Any] = {}
    if "description" in args:
        description = _clean_description(args["description"])
        changes["description"] = UNDEFINED if description is None else description
    if "displayOrder" in args:
        order = args["displayOrder"]
        changes["displayOrder"] = UNDEFINED if order is None else float(order)
    for flag in ("requireDoubleOptIn", "isDefault"):
        if args.get(flag) is not None:
            changes[flag] = args[flag]
    return changes


def _sorted(lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(lists, key=lambda row: (row.get("displayOrder", float("inf")), row["name"]))


# -- reads --------------------------------------------------------------------------------


@query(args={})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The organization's lists by display order, then name."""
    organization_id = await get_team_id_from_session(ctx)
    return _sorted(await live_lists(ctx, organization_id))


@query(args={"listId": v.string()})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The list, or None when it does not exist, is deleted or is another organization's."""
    organization_id = await get_team_id_from_session(ctx)
    found = await live_document(ctx, "mailingLists", organization_id, args["listId"])
    return None if found is None else dict(found)


@query(
    args={
        "listId": v.string(),
        "paginationOpts": PAGINATION_OPTS,
        "status": v.optional(v.union(v.literal("subscribed"), v.literal("pending"))),
    }
)
async def list_members(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A page of memberships, newest first, each with its contact's email and names."""
    organization_id = await get_team_id_from_session(ctx)
    mailing_list = await _list(ctx, organization_id, args["listId"])
    members = (
        ctx.db.query("mailingListMembers")
        .with_index("by_list", lambda q: q.eq("listId", mailing_list["_id"]))
        .order("desc")
    )
    status = args.get("status")
    if status is not None:
        members = members.filter(lambda q: q.eq(q.field("status"), status))
    result = await members.paginate(page_options(args["paginationOpts"]))
    page = []
    for row in result["page"]:
        contact = await ctx.db.get(row["contactId"])
        entry = dict(row)
        if contact is not None:
            for field in ("email", "firstName", "lastName"):
                if field in contact:
                    entry[field] = contact[field]
        page.append(entry)
    return {**result, "page": page}


@query(args={"contactId": v.string()})
async def lists_for_contact(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The lists the contact belongs to, each with `membershipStatus` and `addedAt`."""
    organization_id = await get_team_id_from_session(ctx)
    contact = await _contact(ctx, organization_id, args["contactId"])
    result = []
    for row in await subs.memberships_of_contact(ctx, contact["_id"]):
        found = await ctx.db.get(row["listId"])
        if found is None or found.get("deletedAt") is not None:
            continue
        result.append({**found, "membershipStatus": row["status"], "addedAt": row["addedAt"]})
    return _sorted(result)


# -- list writes ---------------------------------------------------------------------------


@mutation(args={"name": v.string(), **OPTIONAL_FIELDS})
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    context = await get_mutation_context(ctx, require="lists:manage")
    name = _clean_name(args["name"])
    await _unique_name(ctx, context.team_id, name)
    now = now_ms()
    record: dict[str, Any] = {
        "organizationId": context.team_id,
        "name": name,
        "requireDoubleOptIn": True,
        "memberCount": 0,
        "pendingCount": 0,
        "createdAt": now,
        "updatedAt": now,
    }
    changes = _optional_changes(args)
    record.update({k: val for k, val in changes.items() if val is not UNDEFINED})
    return str(await ctx.db.insert("mailingLists", record))


@mutation(args={"listId": v.string(), "name": v.optional(v.string()), **OPTIONAL_FIELDS})
async def update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Change the given fields (None clears description / displayOrder); returns the list.
    Switching `requireDoubleOptIn` does not touch existing memberships."""
    context = await get_mutation_context(ctx, require="lists:manage")
    mailing_list = await _list(ctx, context.team_id, args["listId"])
    changes = _optional_changes(args)
    if args.get("name") is not None:
        name = _clean_name(args["name"])
        await _unique_name(ctx, context.team_id, name, except_id=mailing_list["_id"])
        changes["name"] = name
    if changes:
        changes["updatedAt"] = now_ms()
        await ctx.db.patch(mailing_list["_id"], changes)
    return await reread(ctx, mailing_list["_id"])


@mutation(args={"listId": v.string()})
async def delete(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Hide the list now; its memberships are removed in scheduled batches."""
    context = await get_mutation_context(ctx, require="lists:manage")
    mailing_list = await _list(ctx, context.team_id, args["listId"])
    now = now_ms()
    await ctx.db.patch(mailing_list["_id"], {"deletedAt": now, "updatedAt": now})
    await purge_members_now(ctx, mailing_list["_id"])


async def purge_members_now(ctx: MutationCtx, list_id: str) -> None:
    """One batch of a deleted list's memberships; the next batch is scheduled, and the
    list document goes with the last one."""
    removed = await subs.remove_memberships_of_list(ctx, list_id, PURGE_BATCH)
    if removed == PURGE_BATCH:
        await ctx.scheduler.run_after(0, internal.mailing_lists.purge_members, {"listId": list_id})
    else:
        await ctx.db.delete(list_id)


@internal_mutation(args={"listId": v.id("mailingLists")})
async def purge_members(ctx: MutationCtx, args: dict[str, Any]) -> None:
    found = await ctx.db.get(args["listId"])
    if found is not None and found.get("deletedAt") is not None:
        await purge_members_now(ctx, found["_id"])


# -- membership writes ---------------------------------------------------------------------


def _subscribe_json(result: subs.SubscribeResult) -> dict[str, Any]:
    return {
        "membershipId": result.membership_id,
        "outcome": result.outcome,
        "doiStatus": result.doi_status,
    }


async def _add(
    ctx: MutationCtx,
    mailing_list: dict[str, Any],
    contact: dict[str, Any],
    context: MutationContext,
    skip_doi: bool,
) -> dict[str, Any]:
    result = await subs.subscribe(
        ctx,
        mailing_list=mailing_list,
        contact=contact,
        source="admin",
        skip_doi=skip_doi,
        user_id=context.user_id,
    )
    return _subscribe_json(result)


async def _remove(
    ctx: MutationCtx,
    mailing_list: dict[str, Any],
    contact: dict[str, Any],
    context: MutationContext,
) -> dict[str, Any]:
    removed = await subs.unsubscribe(
        ctx, mailing_list=mailing_list, contact=contact, source="admin", user_id=context.user_id
    )
    return {"removed": removed}


@mutation(args={"listId": v.string(), "contactId": v.string(), "skipDoi": v.optional(v.boolean())})
async def add_contact(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Subscribe a contact (source `admin`): `{membershipId, outcome, doiStatus}`."""
    context = await get_mutation_context(ctx, require="lists:manage")
    mailing_list = await _list(ctx, context.team_id, args["listId"])
    contact = await _contact(ctx, context.team_id, args["contactId"])
    return await _add(ctx, mailing_list, contact, context, bool(args.get("skipDoi")))


@mutation(args={"listId": v.string(), "contactId": v.string()})
async def remove_contact(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """`{removed}`: whether the contact was a member (subscribed or pending)."""
    context = await get_mutation_context(ctx, require="lists:manage")
    mailing_list = await _list(ctx, context.team_id, args["listId"])
    contact = await _contact(ctx, context.team_id, args["contactId"])
    return await _remove(ctx, mailing_list, contact, context)


def _bulk_ids(contact_ids: list[str]) -> list[str]:
    if not contact_ids or len(contact_ids) > MAX_BULK:
        raise invalid("INVALID_BULK_SIZE", f"Pass 1 to {MAX_BULK} contact ids")
    return list(dict.fromkeys(contact_ids))


MemberChange = Callable[
    [dict[str, Any], dict[str, Any], MutationContext], Awaitable[dict[str, Any]]
]


async def _for_each_contact(
    ctx: MutationCtx, args: dict[str, Any], change: MemberChange
) -> list[dict[str, Any]]:
    """`change(list, contact, context)` for up to 100 distinct contact ids, in order; an id
    that is not one of the organization's live contacts gets `{contactId, error}`."""
    context = await get_mutation_context(ctx, require="lists:manage")
    mailing_list = await _list(ctx, context.team_id, args["listId"])
    results: list[dict[str, Any]] = []
    for contact_id in _bulk_ids(args["contactIds"]):
        contact = await live_document(ctx, "contacts", context.team_id, contact_id)
        if contact is None:
            results.append({"contactId": contact_id, "error": "Contact not found"})
            continue
        results.append(
            {"contactId": contact["_id"], **await change(mailing_list, contact, context)}
        )
    return results


@mutation(
    args={
        "listId": v.string(),
        "contactIds": v.array(v.string()),
        "skipDoi": v.optional(v.boolean()),
    }
)
async def add_contacts(ctx: MutationCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Subscribe up to 100 contacts: one `{contactId, outcome, doiStatus, membershipId}`
    or `{contactId, error}` per distinct id, in order."""
    skip_doi = bool(args.get("skipDoi"))
    return await _for_each_contact(
        ctx,
        args,
        lambda mailing_list, contact, context: _add(ctx, mailing_list, contact, context, skip_doi),
    )


@mutation(args={"listId": v.string(), "contactIds": v.array(v.string())})
async def remove_contacts(ctx: MutationCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Remove up to 100 contacts: `{contactId, removed}` or `{contactId, error}` per id."""
    return await _for_each_contact(
        ctx,
        args,
        lambda mailing_list, contact, context: _remove(ctx, mailing_list, contact, context),
    )


@mutation(args={"contactId": v.string()})
async def resend_confirmation(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """A new confirmation link (the old one stops working) for a contact whose double
    opt-in is pending."""
    context = await get_mutation_context(ctx, require="lists:manage")
    contact = await _contact(ctx, context.team_id, args["contactId"])
    if subs.doi_status(contact) != "pending":
        raise conflict(
            "DOI_NOT_PENDING",
            f"The contact's double opt-in is {subs.doi_status(contact)}, not pending",
        )
    now = now_ms()
    changes = await subs.start_doi(ctx, contact, now)
    await ctx.db.patch(contact["_id"], {**changes, "updatedAt": now})


# -- the confirmation mail -----------------------------------------------------------------


@internal_query(args={"contactId": v.id("contacts"), "tokenHash": v.string()})
async def confirmation_details(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """Recipient and organization name, or None when the token is no longer the
    contact's pending one (confirmed, deleted, or superseded by a newer token) or the
    address is suppressed (bounced, complained, blocked)."""
    contact = await ctx.db.get(args["contactId"])
    if (
        contact is None
        or contact.get("deletedAt") is not None
        or contact.get("doiStatus") != "pending"
        or contact.get("doiTokenHash") != args["tokenHash"]
        or await is_suppressed(ctx, contact["organizationId"], contact["email"], transactional=True)
    ):
        return None
    organization = await ctx.db.get(contact["organizationId"])
    return {
        "email": contact["email"],
        "organizationName": organization["name"] if organization else "Newsletter",
    }


@internal_action(args={"contactId": v.id("contacts"), "token": v.string()})
async def send_confirmation(ctx: ActionCtx, args: dict[str, Any]) -> None:
    hashed = token_hash(args["token"])
    details = await ctx.run_query(
        internal.mailing_lists.confirmation_details,
        {"contactId": args["contactId"], "tokenHash": hashed},
    )
    if details is None:
        return
    name = details["organizationName"]
    await mailer.send(
        ctx,
        details["email"],
        f"Confirm your subscription to {name}",
        f"Please confirm that you want to receive email from {name}:\n"
        f"{confirm_link(args['token'])}\n\n"
        "The link is valid for 7 days. If you did not sign up, ignore this email.\n",
        key=f"doi-{args['contactId']}-{hashed[:16]}",
    )
