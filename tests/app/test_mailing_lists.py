"""mailingLists:* and lib/list_subscriptions.py (reference §2.1, §7.2): counts, double
opt-in, contact and list deletion, bulk limits, permissions, tenancy."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib import list_subscriptions as subs
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import (
    Caller,
    mail_text,
    outbox,
    owner_and_editor,
    signed_in,
    with_organization,
)


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


PAGE = {"numItems": 10, "cursor": None}


async def _contact(caller: Caller, email: str, **fields: Any) -> str:
    return str(await caller.mutation("contacts:createFromSession", {"email": email, **fields}))


async def _state(owlat: Application) -> dict[str, Any]:
    """Lists, memberships and contacts as stored."""

    async def read(ctx: Any) -> dict[str, Any]:
        return {
            table: {row["_id"]: dict(row) for row in await ctx.db.query(table).collect()}
            for table in ("mailingLists", "mailingListMembers", "contacts")
        }

    return dict(await in_query(owlat, read))


async def _assert_exact(owlat: Application) -> dict[str, Any]:
    """Every list's counts equal a recount of its memberships, and every contact's
    `mailingListIds` equals the lists it is subscribed to (not pending); returns the state."""
    state = await _state(owlat)
    rows = list(state["mailingListMembers"].values())
    for list_id, mailing_list in state["mailingLists"].items():
        mine = [r for r in rows if r["listId"] == list_id]
        assert mailing_list["memberCount"] == sum(r["status"] == "subscribed" for r in mine)
        assert mailing_list["pendingCount"] == sum(r["status"] == "pending" for r in mine)
    for contact_id, contact in state["contacts"].items():
        expected = {
            r["listId"]
            for r in rows
            if r["contactId"] == contact_id and r["status"] == "subscribed"
        }
        assert set(contact.get("mailingListIds") or []) == expected, contact["email"]
    return state


async def _wait_for_mail(data_dir: Path, count: int) -> list[Any]:
    """The outbox's list mails once it holds `count` of them (sent by scheduled jobs: up to
    10 s on a loaded machine with PostgreSQL). The editor's invitation mail is left out: the
    fixture accepts the invitation at once, so its mail job may or may not still send it."""
    for _ in range(1000):
        mails = [m for m in outbox(data_dir) if not m["Subject"].startswith("You are invited")]
        if len(mails) >= count:
            return mails
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} mails, got {len(outbox(data_dir))}")


def _doi_token(mail: Any) -> str:
    match = re.search(r"/confirm\?token=([A-Za-z0-9]+)", mail_text(mail))
    assert match, mail_text(mail)
    return match.group(1)


async def _confirm(owlat: Application, token: str) -> subs.ConfirmResult:
    async def run(ctx: Any) -> dict[str, Any]:
        return dataclasses.asdict(await subs.confirm_doi(ctx, token))

    return subs.ConfirmResult(**await in_mutation(owlat, run))


async def _counts(caller: Caller, list_id: str) -> tuple[int, int]:
    found = await caller.query("mailingLists:get", {"listId": list_id})
    return found["memberCount"], found["pendingCount"]


# -- lists ----------------------------------------------------------------------------------


async def test_create_update_and_names(owlat: Application) -> None:
    owner, editor, organization_id = await owner_and_editor(owlat)
    list_id = await editor.mutation(
        "mailingLists:create", {"name": " News ", "description": "Weekly", "displayOrder": 2}
    )
    created = await owner.query("mailingLists:get", {"listId": list_id})
    assert created["name"] == "News" and created["organizationId"] == organization_id
    assert created["requireDoubleOptIn"] is True
    assert (created["memberCount"], created["pendingCount"]) == (0, 0)
    other = await owner.mutation(
        "mailingLists:create", {"name": "Alerts", "requireDoubleOptIn": False, "displayOrder": 1}
    )
    assert [x["_id"] for x in await editor.query("mailingLists:list")] == [other, list_id]
    with pytest.raises(ConvexError, match='^A mailing list named "News" already exists$'):
        await owner.mutation("mailingLists:create", {"name": "NEWS"})
    with pytest.raises(ConvexError, match='^A mailing list named "Alerts" already exists$'):
        await owner.mutation("mailingLists:update", {"listId": list_id, "name": "alerts"})
    with pytest.raises(ConvexError, match="^Name must be 1 to 200 characters$"):
        await owner.mutation("mailingLists:create", {"name": "x" * 201})
    with pytest.raises(ConvexError, match="^Name must be 1 to 200 characters$"):
        await owner.mutation("mailingLists:create", {"name": "   "})
    with pytest.raises(ConvexError, match="^Description must be at most 5000 characters$"):
        await owner.mutation("mailingLists:create", {"name": "Long", "description": "d" * 5001})
    updated = await editor.mutation(
        "mailingLists:update",
        {"listId": list_id, "name": "news", "description": None, "requireDoubleOptIn": False},
    )
    assert updated["name"] == "news" and "description" not in updated
    assert updated["requireDoubleOptIn"] is False
    assert await owner.query("mailingLists:get", {"listId": "nonsense"}) is None


async def test_editor_may_manage_lists_and_members(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    list_id = await editor.mutation(
        "mailingLists:create", {"name": "Editors", "requireDoubleOptIn": False}
    )
    contact_id = await _contact(owner, "ada@example.com")
    added = await editor.mutation(
        "mailingLists:addContact", {"listId": list_id, "contactId": contact_id}
    )
    assert added["outcome"] == "subscribed"
    assert await editor.mutation(
        "mailingLists:removeContact", {"listId": list_id, "contactId": contact_id}
    ) == {"removed": True}
    await editor.mutation("mailingLists:delete", {"listId": list_id})
    assert await owner.query("mailingLists:get", {"listId": list_id}) is None
    outsider = await signed_in(owlat, "outsider@example.com")
    with pytest.raises(ConvexError, match="^No active organization$"):
        await outsider.mutation("mailingLists:create", {"name": "Nope"})
    with pytest.raises(ConvexError, match="^No active organization$"):
        await outsider.query("mailingLists:list")


# -- memberships and counts -------------------------------------------------------------------


async def test_counts_stay_exact_through_the_lifecycle(owlat: Application, tmp_path: Path) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    plain = await owner.mutation(
        "mailingLists:create", {"name": "Plain", "requireDoubleOptIn": False}
    )
    doi = await owner.mutation("mailingLists:create", {"name": "Confirmed only"})
    ada = await _contact(owner, "ada@example.com")
    bob = await _contact(owner, "bob@example.com")
    cy = await _contact(owner, "cy@example.com")
    await owner.mutation("contacts:update", {"contactId": ada, "unsubscribed": True})

    first = await owner.mutation("mailingLists:addContact", {"listId": plain, "contactId": ada})
    assert (first["outcome"], first["doiStatus"]) == ("subscribed", "not_required")
    again = await owner.mutation("mailingLists:addContact", {"listId": plain, "contactId": ada})
    assert again == {**first, "outcome": "already_member"}
    state = await _assert_exact(owlat)
    assert "unsubscribedAt" not in state["contacts"][ada]  # a subscription clears it

    pending = await editor.mutation("mailingLists:addContact", {"listId": doi, "contactId": bob})
    assert (pending["outcome"], pending["doiStatus"]) == ("pending_doi", "pending")
    skipped = await owner.mutation(
        "mailingLists:addContact", {"listId": doi, "contactId": cy, "skipDoi": True}
    )
    assert skipped["outcome"] == "subscribed"
    await owner.mutation("mailingLists:addContact", {"listId": plain, "contactId": bob})
    assert await _counts(owner, plain) == (2, 0)
    assert await _counts(owner, doi) == (1, 1)
    state = await _assert_exact(owlat)
    bob_doc = state["contacts"][bob]
    assert bob_doc["doiStatus"] == "pending" and len(bob_doc["doiTokenHash"]) == 64
    assert bob_doc["mailingListIds"] == [plain]  # not the DOI list until confirmed

    (mail,) = await _wait_for_mail(tmp_path, 1)
    assert mail["To"] == "bob@example.com"
    assert mail["Subject"] == "Confirm your subscription to Acme"
    token = _doi_token(mail)
    assert len(token) == 32 and token not in str(bob_doc)  # only its hash is stored
    confirmed = await _confirm(owlat, token)
    assert (confirmed.already_confirmed, confirmed.confirmed_lists) == (False, 1)
    assert (await _confirm(owlat, token)).already_confirmed is True
    assert await _counts(owner, doi) == (2, 0)
    state = await _assert_exact(owlat)
    assert state["contacts"][bob]["doiStatus"] == "confirmed"
    assert set(state["contacts"][bob]["mailingListIds"]) == {plain, doi}
    # a confirmed contact joins further DOI lists directly
    later = await owner.mutation("mailingLists:create", {"name": "Later"})
    direct = await owner.mutation("mailingLists:addContact", {"listId": later, "contactId": bob})
    assert (direct["outcome"], direct["doiStatus"]) == ("subscribed", "confirmed")

    assert await owner.mutation(
        "mailingLists:removeContact", {"listId": plain, "contactId": ada}
    ) == {"removed": True}
    assert await owner.mutation(
        "mailingLists:removeContact", {"listId": plain, "contactId": ada}
    ) == {"removed": False}
    await _assert_exact(owlat)

    await owner.mutation("contacts:delete", {"contactId": bob})  # soft delete
    assert await _counts(owner, plain) == (0, 0)
    assert await _counts(owner, doi) == (1, 0)
    await owner.mutation("contacts:hardDelete", {"contactId": cy})
    assert await _counts(owner, doi) == (0, 0)
    state = await _assert_exact(owlat)
    assert not state["mailingListMembers"]

    timeline = await owner.query(
        "contacts:activities",
        {"contactId": bob, "paginationOpts": {"numItems": 50, "cursor": None}},
    )
    kinds = [
        (a["activityType"], (a.get("metadata") or {}).get("listName")) for a in timeline["page"]
    ]
    assert ("list_confirmed", "Confirmed only") in kinds
    assert ("list_subscribed", "Plain") in kinds


async def test_bulk_delete_of_contacts_fixes_counts(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "L", "requireDoubleOptIn": False}
    )
    ids = [await _contact(owner, f"c{i}@example.com") for i in range(3)]
    await owner.mutation("mailingLists:addContacts", {"listId": list_id, "contactIds": ids})
    assert await _counts(owner, list_id) == (3, 0)
    await owner.mutation("contacts:bulkDelete", {"contactIds": ids[:2]})
    assert await _counts(owner, list_id) == (1, 0)
    await _assert_exact(owlat)


async def test_deleting_a_large_list_in_batches(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    keep = await owner.mutation(
        "mailingLists:create", {"name": "Keep", "requireDoubleOptIn": False}
    )
    doomed = await owner.mutation(
        "mailingLists:create", {"name": "Doomed", "requireDoubleOptIn": False}
    )

    async def many(ctx: Any) -> list[str]:
        ids = []
        for i in range(230):
            ids.append(
                await ctx.db.insert(
                    "contacts",
                    {
                        "organizationId": (await ctx.db.get(doomed))["organizationId"],
                        "email": f"m{i}@example.com",
                        "source": "import",
                        "properties": {},
                        "createdAt": 1.0,
                        "updatedAt": 1.0,
                    },
                )
            )
        return ids

    ids = await in_mutation(owlat, many)
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        for list_id in (keep, doomed):
            results = await owner.mutation(
                "mailingLists:addContacts", {"listId": list_id, "contactIds": chunk}
            )
            assert {r["outcome"] for r in results} == {"subscribed"}
    assert await _counts(owner, doomed) == (230, 0)
    await owner.mutation("mailingLists:delete", {"listId": doomed})
    assert await owner.query("mailingLists:get", {"listId": doomed}) is None
    assert [x["name"] for x in await owner.query("mailingLists:list")] == ["Keep"]
    with pytest.raises(ConvexError, match="^Mailing list not found$"):
        await owner.mutation("mailingLists:addContact", {"listId": doomed, "contactId": ids[0]})
    # the name is free at once
    await owner.mutation("mailingLists:create", {"name": "Doomed"})
    for _ in range(300):
        state = await _state(owlat)
        if doomed not in state["mailingLists"]:
            break
        await asyncio.sleep(0.01)
    state = await _assert_exact(owlat)
    assert doomed not in state["mailingLists"]
    assert all(r["listId"] == keep for r in state["mailingListMembers"].values())
    assert await _counts(owner, keep) == (230, 0)


async def test_bulk_limits_and_per_id_outcomes(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    list_id = await owner.mutation(
        "mailingLists:create", {"name": "L", "requireDoubleOptIn": False}
    )
    ada = await _contact(owner, "ada@example.com")
    gone = await _contact(owner, "gone@example.com")
    await owner.mutation("contacts:delete", {"contactId": gone})
    for ids in ([], [ada] * 101):
        for path in ("mailingLists:addContacts", "mailingLists:removeContacts"):
            with pytest.raises(ConvexError, match="^Pass 1 to 100 contact ids$"):
                await owner.mutation(path, {"listId": list_id, "contactIds": ids})
    results = await owner.mutation(
        "mailingLists:addContacts", {"listId": list_id, "contactIds": [ada, "nonsense", ada, gone]}
    )
    assert [(r["contactId"], r.get("outcome"), r.get("error")) for r in results] == [
        (ada, "subscribed", None),
        ("nonsense", None, "Contact not found"),
        (gone, None, "Contact not found"),
    ]
    removed = await owner.mutation(
        "mailingLists:removeContacts", {"listId": list_id, "contactIds": [ada, gone]}
    )
    assert removed == [
        {"contactId": ada, "removed": True},
        {"contactId": gone, "error": "Contact not found"},
    ]
    await _assert_exact(owlat)


async def test_another_organizations_ids_are_refused(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    mine = await owner.mutation("mailingLists:create", {"name": "Mine"})
    my_contact = await _contact(owner, "ada@example.com")
    other = await signed_in(owlat, "other@example.com")
    await with_organization(other, "other")
    theirs = await other.mutation("mailingLists:create", {"name": "Theirs"})
    their_contact = await _contact(other, "bob@example.com")
    with pytest.raises(ConvexError, match="^Mailing list not found$"):
        await owner.mutation("mailingLists:addContact", {"listId": theirs, "contactId": my_contact})
    with pytest.raises(ConvexError, match="^Contact not found$"):
        await owner.mutation(
            "mailingLists:addContact", {"listId": mine, "contactId": their_contact}
        )
    results = await owner.mutation(
        "mailingLists:addContacts", {"listId": mine, "contactIds": [their_contact]}
    )
    assert results == [{"contactId": their_contact, "error": "Contact not found"}]
    with pytest.raises(ConvexError, match="^Mailing list not found$"):
        await owner.mutation("mailingLists:delete", {"listId": theirs})
    with pytest.raises(ConvexError, match="^Mailing list not found$"):
        await owner.query("mailingLists:listMembers", {"listId": theirs, "paginationOpts": PAGE})
    with pytest.raises(ConvexError, match="^Contact not found$"):
        await owner.query("mailingLists:listsForContact", {"contactId": their_contact})
    with pytest.raises(ConvexError, match="^Contact not found$"):
        await owner.mutation("mailingLists:resendConfirmation", {"contactId": their_contact})
    assert await owner.query("mailingLists:get", {"listId": theirs}) is None

    async def mismatched(ctx: Any) -> None:
        await subs.subscribe(
            ctx,
            mailing_list=dict(await ctx.db.get(theirs)),
            contact=dict(await ctx.db.get(my_contact)),
            source="admin",
        )

    with pytest.raises(AssertionError):
        await in_mutation(owlat, mismatched)
    state = await _assert_exact(owlat)
    assert not state["mailingListMembers"]


async def test_members_page_lists_for_contact_and_resend(
    owlat: Application, tmp_path: Path
) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    news = await owner.mutation("mailingLists:create", {"name": "News"})
    plain = await owner.mutation(
        "mailingLists:create", {"name": "Plain", "requireDoubleOptIn": False}
    )
    ids = [await _contact(owner, f"c{i}@example.com", firstName=f"C{i}") for i in range(3)]
    for contact_id in ids:
        await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": contact_id})
    await owner.mutation("mailingLists:addContact", {"listId": plain, "contactId": ids[0]})
    page = await editor.query(
        "mailingLists:listMembers",
        {"listId": news, "paginationOpts": {"numItems": 2, "cursor": None}},
    )
    assert [m["contactId"] for m in page["page"]] == [ids[2], ids[1]]
    assert page["page"][0]["email"] == "c2@example.com" and page["page"][0]["status"] == "pending"
    rest = await editor.query(
        "mailingLists:listMembers",
        {"listId": news, "paginationOpts": {"numItems": 2, "cursor": page["continueCursor"]}},
    )
    assert [m["contactId"] for m in rest["page"]] == [ids[0]]
    lists = await editor.query("mailingLists:listsForContact", {"contactId": ids[0]})
    assert [(x["name"], x["membershipStatus"]) for x in lists] == [
        ("News", "pending"),
        ("Plain", "subscribed"),
    ]

    mails = await _wait_for_mail(tmp_path, 3)
    first = next(m for m in mails if m["To"] == "c0@example.com")
    await editor.mutation("mailingLists:resendConfirmation", {"contactId": ids[0]})
    mails = await _wait_for_mail(tmp_path, 4)
    second = [m for m in mails if m["To"] == "c0@example.com"]
    assert len(second) == 2
    tokens = {_doi_token(m) for m in second}
    old, (new,) = _doi_token(first), tokens - {_doi_token(first)}
    with pytest.raises(ConvexError, match="^Invalid or expired confirmation token$"):
        await _confirm(owlat, old)  # superseded by the resent link
    assert (await _confirm(owlat, new)).confirmed_lists == 1
    with pytest.raises(ConvexError, match="^The contact's double opt-in is confirmed"):
        await owner.mutation("mailingLists:resendConfirmation", {"contactId": ids[0]})
    fresh = await _contact(owner, "fresh@example.com")
    with pytest.raises(ConvexError, match="is not_required, not pending$"):
        await owner.mutation("mailingLists:resendConfirmation", {"contactId": fresh})
    await _assert_exact(owlat)


async def test_doi_tokens_expire(owlat: Application, tmp_path: Path) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    news = await owner.mutation("mailingLists:create", {"name": "News"})
    ada = await _contact(owner, "ada@example.com")
    await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": ada})
    (mail,) = await _wait_for_mail(tmp_path, 1)
    token = _doi_token(mail)

    async def expire(ctx: Any) -> None:
        await ctx.db.patch(ada, {"doiTokenExpiresAt": 1.0})

    await in_mutation(owlat, expire)
    with pytest.raises(ConvexError, match="^This confirmation link has expired$"):
        await _confirm(owlat, token)
    with pytest.raises(ConvexError, match="^Invalid or expired confirmation token$"):
        await _confirm(owlat, "x" * 32)
    assert await _counts(owner, news) == (0, 1)


async def test_no_confirmation_mail_to_a_suppressed_address(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    news = await owner.mutation("mailingLists:create", {"name": "News"})
    ada = await _contact(owner, "ada@example.com")
    bob = await _contact(owner, "bob@example.com")
    await owner.mutation("blockedEmails:add", {"email": "ada@example.com", "reason": "bounced"})
    for contact_id in (ada, bob):
        await owner.mutation("mailingLists:addContact", {"listId": news, "contactId": contact_id})
    state = await _state(owlat)

    async def details(contact_id: str) -> Any:
        args = {"contactId": contact_id, "tokenHash": state["contacts"][contact_id]["doiTokenHash"]}
        result = await owlat.run_query("mailingLists:confirmationDetails", args, internal=True)
        return result.value

    assert await details(ada) is None
    assert await details(bob) == {"email": "bob@example.com", "organizationName": "Acme"}
