"""The single writer of mailing-list memberships (reference §7.2), run inside a mutation.

Every membership change keeps three copies exact in the same transaction:
- `mailingListMembers`: one row per (list, contact), status `subscribed` or `pending`
  (waiting for the contact's double opt-in confirmation);
- `mailingLists.memberCount` (subscribed rows) and `pendingCount` (pending rows);
- `contacts.mailingListIds`: the ids of the lists where the contact is **subscribed**
  (a pending membership joins it on confirmation), so a segment's list-membership
  condition never selects a contact who has not confirmed.
and writes the contact's timeline (`list_subscribed`, `list_unsubscribed`,
`list_confirmed`, with metadata listId, listName, source). `ListBatch` subscribes many
contacts to one list in one transaction (imports): the counts move once per batch, and a
contact it creates is inserted already a member, with no `list_subscribed` activity.

Double opt-in: a subscription needs confirmation iff the list requires it, the caller
did not pass `skip_doi`, and the contact is not already `confirmed`. The contact then
becomes `pending` with a fresh 32-character token (only its SHA-256 is stored, valid
7 days) and a scheduled job mails `<site>/confirm?token=…`. `confirm_doi` turns every
pending membership of the contact into a subscription. The token hash is kept after
confirmation (until it expires) so a second click answers "already confirmed".

Callers pass documents they loaded and checked belong to the caller's organization.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from owlat.app.lib.activities import insert_contacts, record_activity
from owlat.app.lib.errors import AppError, invalid, not_found
from owlat.app.lib.session_organization import now_ms
from owlat.app.lib.tokens import random_token, token_hash
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, internal

DOI_TOKEN_LENGTH = 32
DOI_TTL_MS = 7 * 24 * 60 * 60 * 1000

Outcome = Literal["subscribed", "pending_doi", "already_member"]
DoiStatus = Literal["not_required", "pending", "confirmed"]


@dataclass(frozen=True)
class SubscribeResult:
    membership_id: str
    outcome: Outcome
    doi_status: DoiStatus


@dataclass(frozen=True)
class ConfirmResult:
    contact_id: str
    email: str
    already_confirmed: bool
    confirmed_lists: int


# -- reads ---------------------------------------------------------------------------------


async def membership(ctx: QueryCtx, list_id: str, contact_id: str) -> dict[str, Any] | None:
    found = (
        await ctx.db.query("mailingListMembers")
        .with_index(
            "by_list_contact", lambda q: q.eq("listId", list_id).eq("contactId", contact_id)
        )
        .unique()
    )
    return None if found is None else dict(found)


async def memberships(
    ctx: QueryCtx, list_id: str, contact_ids: Sequence[str]
) -> list[dict[str, Any] | None]:
    """`membership` in `list_id` of each of `contact_ids`, in order, read in one step
    (`db.lookup`: one engine call for a batch of sends)."""
    found = await ctx.db.lookup(
        "mailingListMembers", "by_list_contact", [(list_id, each) for each in contact_ids]
    )
    return [dict(rows[0]) if rows else None for rows in found]


async def memberships_of_contact(ctx: QueryCtx, contact_id: str) -> list[dict[str, Any]]:
    rows = (
        await ctx.db.query("mailingListMembers")
        .with_index("by_contact", lambda q: q.eq("contactId", contact_id))
        .collect()
    )
    return [dict(row) for row in rows]


async def contact_by_doi_token(ctx: QueryCtx, token: str) -> dict[str, Any] | None:
    found = (
        await ctx.db.query("contacts")
        .with_index("by_doi_token", lambda q: q.eq("doiTokenHash", token_hash(token)))
        .first()
    )
    return None if found is None else dict(found)


def doi_status(contact: dict[str, Any]) -> DoiStatus:
    status: DoiStatus = contact.get("doiStatus") or "not_required"
    return status


# -- the pieces every change shares ------------------------------------------------------------


async def _fresh(ctx: QueryCtx, document: dict[str, Any], what: str) -> dict[str, Any]:
    """The current version of `document` (callers' copies may be stale within a batch)."""
    found = await ctx.db.get(document["_id"])
    if found is None or found.get("deletedAt") is not None:
        raise not_found(what)
    return dict(found)


async def _move_counts(ctx: MutationCtx, list_id: str, subscribed: int, pending: int) -> None:
    found = await ctx.db.get(list_id)
    if found is None:
        return
    await ctx.db.patch(
        list_id,
        {
            "memberCount": found["memberCount"] + subscribed,
            "pendingCount": found["pendingCount"] + pending,
        },
    )


def _count_delta(status: str, sign: int) -> tuple[int, int]:
    return (sign, 0) if status == "subscribed" else (0, sign)


def _list_metadata(mailing_list: dict[str, Any], source: str) -> dict[str, str]:
    return {"listId": mailing_list["_id"], "listName": mailing_list["name"], "source": source}


def _list_ids(contact: dict[str, Any], *, add: str | None = None, drop: str | None = None) -> Any:
    ids = [i for i in contact.get("mailingListIds") or [] if i != drop]
    if add is not None and add not in ids:
        ids.append(add)
    return ids or UNDEFINED


def _same_organization(mailing_list: dict[str, Any], contact: dict[str, Any]) -> None:
    """A caller's bug, never a user's input: raised even under `python -O`."""
    if mailing_list["organizationId"] != contact["organizationId"]:
        raise AssertionError("mailing list and contact belong to different organizations")


async def start_doi(ctx: MutationCtx, contact: dict[str, Any], at: float) -> dict[str, Any]:
    """Changes that make `contact` pending with a fresh token; schedules the mail."""
    token = random_token(DOI_TOKEN_LENGTH)
    await ctx.scheduler.run_after(
        0,
        internal.mailing_lists.send_confirmation,
        {"contactId": contact["_id"], "token": token},
    )
    return {
        "doiStatus": "pending",
        "doiTokenHash": token_hash(token),
        "doiTokenExpiresAt": at + DOI_TTL_MS,
    }


# -- subscribe / unsubscribe --------------------------------------------------------------------


async def subscribe(
    ctx: MutationCtx,
    *,
    mailing_list: dict[str, Any],
    contact: dict[str, Any],
    source: str,
    skip_doi: bool = False,
    force_doi: bool = False,
    user_id: str | None = None,
) -> SubscribeResult:
    """Add `contact` to `mailing_list` (§7.2's algorithm); no effect if already a member.
    `force_doi`: double opt-in even where the list does not require it (a form's)."""
    _same_organization(mailing_list, contact)
    mailing_list = await _fresh(ctx, mailing_list, "Mailing list")
    contact = await _fresh(ctx, contact, "Contact")
    existing = await membership(ctx, mailing_list["_id"], contact["_id"])
    if existing is not None:
        return SubscribeResult(existing["_id"], "already_member", doi_status(contact))
    result, _, delta = await _join(
        ctx,
        mailing_list,
        contact,
        source=source,
        skip_doi=skip_doi,
        user_id=user_id,
        force_doi=force_doi,
    )
    await _move_counts(ctx, mailing_list["_id"], *delta)
    return result


def _membership_record(
    mailing_list: dict[str, Any], contact_id: str, status: str, source: str, at: float
) -> dict[str, Any]:
    return {
        "organizationId": mailing_list["organizationId"],
        "listId": mailing_list["_id"],
        "contactId": contact_id,
        "status": status,
        "source": source,
        "addedAt": at,
    }


async def _insert_membership(
    ctx: MutationCtx,
    mailing_list: dict[str, Any],
    contact_id: str,
    status: str,
    source: str,
    at: float,
) -> str:
    record = _membership_record(mailing_list, contact_id, status, source, at)
    return str(await ctx.db.insert("mailingListMembers", record))


async def _join(
    ctx: MutationCtx,
    mailing_list: dict[str, Any],
    contact: dict[str, Any],
    *,
    source: str,
    skip_doi: bool,
    user_id: str | None,
    force_doi: bool = False,
) -> tuple[SubscribeResult, dict[str, Any], tuple[int, int]]:
    """Make `contact` (current, not a member) a member: its membership, contact changes
    (starting double opt-in if needed) and `list_subscribed` activity. Returns the result,
    the contact as it now is, and the (subscribed, pending) deltas the caller applies to
    the list's counts."""
    now = now_ms()
    required = (
        (mailing_list["requireDoubleOptIn"] or force_doi)
        and not skip_doi
        and doi_status(contact) != "confirmed"
    )
    status = "pending" if required else "subscribed"
    membership_id = await _insert_membership(ctx, mailing_list, contact["_id"], status, source, now)
    changes: dict[str, Any] = {"updatedAt": now}
    if required:
        changes.update(await start_doi(ctx, contact, now))
    else:
        changes["mailingListIds"] = _list_ids(contact, add=mailing_list["_id"])
        changes["unsubscribedAt"] = UNDEFINED
    await ctx.db.patch(contact["_id"], changes)
    metadata = _list_metadata(mailing_list, source)
    if required:
        metadata["status"] = "pending"
    await record_activity(ctx, contact, "list_subscribed", metadata, user_id, now)
    updated = {k: val for k, val in {**contact, **changes}.items() if val is not UNDEFINED}
    delta = _count_delta(status, +1)
    if required:
        return SubscribeResult(membership_id, "pending_doi", "pending"), updated, delta
    return SubscribeResult(membership_id, "subscribed", doi_status(contact)), updated, delta


class ListBatch:
    """Many subscriptions to one list in one mutation (a contact import's batch).

    Each contact is subscribed as `subscribe` does it, but the list's counts move once,
    by the batch's sum, in `flush` (call it before the mutation returns; the counts are
    exact at every commit). A contact created by the batch (`insert_contacts`) is
    written once, already a member. Pass contacts as they are in this transaction: the
    batch does not re-read them (use the copies `add` and `insert_contacts` return)."""

    def __init__(
        self, ctx: MutationCtx, mailing_list: dict[str, Any], *, source: str, user_id: str | None
    ) -> None:
        self._ctx = ctx
        self.mailing_list = mailing_list
        self._source = source
        self._user_id = user_id
        self._members: set[str] = set()  # contacts known to be members
        self._new_subscribed = 0
        self._new_pending = 0

    @classmethod
    async def open(
        cls, ctx: MutationCtx, list_id: str, *, source: str, user_id: str | None
    ) -> ListBatch | None:
        """A batch for the list, or None when it is gone (deleted)."""
        found = await ctx.db.get(list_id)
        if found is None or found.get("deletedAt") is not None:
            return None
        return cls(ctx, dict(found), source=source, user_id=user_id)

    async def insert_contacts(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert new contacts (`records`, their fields) as members; returns them with their
        ids, in order. Their creation is recorded by the caller (an import's contacts name
        it: `importId`).

        With no double opt-in to ask for, the contacts are inserted once with their final
        `mailingListIds`, next to their memberships, and no `list_subscribed` activity (the
        creation names the list): one `insert_many` per table. A list asking for double
        opt-in then subscribes each as `add` does: pending, with a confirmation mail."""
        for record in records:
            _same_organization(self.mailing_list, record)
        list_id = self.mailing_list["_id"]
        direct = not self.mailing_list["requireDoubleOptIn"]
        contacts = [
            {**record, "mailingListIds": [list_id]} if direct else dict(record)
            for record in records
        ]
        contacts = await insert_contacts(self._ctx, contacts)
        if not direct:
            return [await self._subscribe(contact) for contact in contacts]
        now = now_ms()
        ids = [contact["_id"] for contact in contacts]
        memberships = [
            _membership_record(self.mailing_list, contact_id, "subscribed", self._source, now)
            for contact_id in ids
        ]
        await self._ctx.db.insert_many("mailingListMembers", memberships)
        self._members.update(ids)
        self._new_subscribed += len(ids)
        return contacts

    async def add(self, contact: dict[str, Any]) -> dict[str, Any]:
        """Subscribe an existing `contact` (no effect if it is a member); returns the
        contact as it now is."""
        _same_organization(self.mailing_list, contact)
        if contact["_id"] in self._members:
            return contact
        if await membership(self._ctx, self.mailing_list["_id"], contact["_id"]) is not None:
            self._members.add(contact["_id"])
            return contact
        return await self._subscribe(contact)

    async def _subscribe(self, contact: dict[str, Any]) -> dict[str, Any]:
        _, contact, (subscribed, pending) = await _join(
            self._ctx,
            self.mailing_list,
            contact,
            source=self._source,
            skip_doi=False,
            user_id=self._user_id,
        )
        self._members.add(contact["_id"])
        self._new_subscribed += subscribed
        self._new_pending += pending
        return contact

    async def flush(self) -> None:
        """Move the list's counts by what the batch added so far."""
        if self._new_subscribed or self._new_pending:
            await _move_counts(
                self._ctx, self.mailing_list["_id"], self._new_subscribed, self._new_pending
            )
        self._new_subscribed = self._new_pending = 0


async def _drop(ctx: MutationCtx, row: dict[str, Any]) -> None:
    await ctx.db.delete(row["_id"])
    await _move_counts(ctx, row["listId"], *_count_delta(row["status"], -1))


async def unsubscribe(
    ctx: MutationCtx,
    *,
    mailing_list: dict[str, Any],
    contact: dict[str, Any],
    source: str,
    user_id: str | None = None,
) -> bool:
    """Remove `contact` from `mailing_list`; True if it was a member (subscribed or
    pending)."""
    _same_organization(mailing_list, contact)
    row = await membership(ctx, mailing_list["_id"], contact["_id"])
    if row is None:
        return False
    contact = await _fresh(ctx, contact, "Contact")
    now = now_ms()
    await _drop(ctx, row)
    await ctx.db.patch(
        contact["_id"],
        {"mailingListIds": _list_ids(contact, drop=mailing_list["_id"]), "updatedAt": now},
    )
    metadata = _list_metadata(mailing_list, source)
    await record_activity(ctx, contact, "list_unsubscribed", metadata, user_id, now)
    return True


async def unsubscribe_all(ctx: MutationCtx, *, contact: dict[str, Any], source: str) -> int:
    """Remove every membership of `contact` and opt it out of marketing mail
    (`unsubscribedAt`); returns how many memberships were removed."""
    contact = await _fresh(ctx, contact, "Contact")
    now = now_ms()
    rows = await memberships_of_contact(ctx, contact["_id"])
    for row in rows:
        await _drop(ctx, row)
        found = await ctx.db.get(row["listId"])
        name = found["name"] if found is not None else ""
        metadata = {"listId": row["listId"], "listName": name, "source": source}
        await record_activity(ctx, contact, "list_unsubscribed", metadata, None, now)
    changes: dict[str, Any] = {"mailingListIds": UNDEFINED, "updatedAt": now}
    if contact.get("unsubscribedAt") is None:
        changes["unsubscribedAt"] = now
        await record_activity(ctx, contact, "unsubscribed", {"source": source}, None, now)
    await ctx.db.patch(contact["_id"], changes)
    return len(rows)


async def remove_memberships_of_contact(ctx: MutationCtx, contact: dict[str, Any]) -> None:
    """Drop every membership of a contact being deleted (soft or hard), fixing counts."""
    for row in await memberships_of_contact(ctx, contact["_id"]):
        await _drop(ctx, row)
    if await ctx.db.get(contact["_id"]) is not None:
        await ctx.db.patch(contact["_id"], {"mailingListIds": UNDEFINED})


async def remove_memberships_of_list(ctx: MutationCtx, list_id: str, limit: int) -> int:
    """Delete up to `limit` memberships of a deleted list (each member's
    `mailingListIds` loses the list); returns how many were deleted."""
    rows = (
        await ctx.db.query("mailingListMembers")
        .with_index("by_list", lambda q: q.eq("listId", list_id))
        .take(limit)
    )
    for row in rows:
        await _drop(ctx, dict(row))
        found = await ctx.db.get(row["contactId"])
        if found is not None:
            await ctx.db.patch(found["_id"], {"mailingListIds": _list_ids(found, drop=list_id)})
    return len(rows)


# -- double opt-in ------------------------------------------------------------------------------


def doi_token_error(reason: str) -> AppError:
    message = {
        "token_not_found": "Invalid or expired confirmation token",
        "token_expired": "This confirmation link has expired",
    }[reason]
    return invalid(reason.upper(), message)


async def contact_for_doi_token(ctx: QueryCtx, token: str) -> dict[str, Any]:
    """The live contact holding DOI `token`, or `token_not_found` / `token_expired`."""
    contact = await contact_by_doi_token(ctx, token) if token else None
    if contact is None or contact.get("deletedAt") is not None:
        raise doi_token_error("token_not_found")
    if contact.get("doiTokenExpiresAt", 0) <= now_ms():
        raise doi_token_error("token_expired")
    return contact


async def confirm_doi(ctx: MutationCtx, token: str) -> ConfirmResult:
    """Confirm the contact of `token`: every pending membership becomes subscribed.
    Idempotent: a confirmed contact answers `already_confirmed`."""
    contact = await contact_for_doi_token(ctx, token)
    if doi_status(contact) == "confirmed":
        return ConfirmResult(contact["_id"], contact["email"], True, 0)
    now = now_ms()
    confirmed: list[str] = []
    for row in await memberships_of_contact(ctx, contact["_id"]):
        mailing_list = await ctx.db.get(row["listId"])
        if row["status"] != "pending" or mailing_list is None:
            continue
        if mailing_list.get("deletedAt") is not None:
            continue  # the list's batched deletion removes this row
        await ctx.db.patch(row["_id"], {"status": "subscribed"})
        await _move_counts(ctx, row["listId"], +1, -1)
        metadata = _list_metadata(dict(mailing_list), row["source"])
        await record_activity(ctx, contact, "list_confirmed", metadata, None, now)
        confirmed.append(row["listId"])
    changes: dict[str, Any] = {"doiStatus": "confirmed", "doiConfirmedAt": now, "updatedAt": now}
    if confirmed:
        listed = contact.get("mailingListIds") or []
        changes["mailingListIds"] = [*listed, *(i for i in confirmed if i not in listed)]
        changes["unsubscribedAt"] = UNDEFINED
    await ctx.db.patch(contact["_id"], changes)
    return ConfirmResult(contact["_id"], contact["email"], False, len(confirmed))
