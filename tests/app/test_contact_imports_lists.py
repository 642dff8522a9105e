"""contactImports:* into a mailing list: each new contact written once, already a member;
existing contacts subscribed as `mailingLists:addContact` does; the list's counts bumped
once per batch and exact after every batch (lib/list_subscriptions.ListBatch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib import contact_import
from owlat.app.lib.activities import with_import_entry
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Caller
from tests.app.test_contact_imports import _contacts, _finished, _import, _owner, _queued
from tests.app.test_mailing_lists import _assert_exact, _wait_for_mail
from tests.app.test_segment_counts import PRO_HIGH, _check
from tests.app.test_segments import count_ready


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


EMAIL = {"Email": "email", "First": "firstName"}


async def _list(caller: Caller, *, doi: bool = False) -> str:
    return str(
        await caller.mutation("mailingLists:create", {"name": "News", "requireDoubleOptIn": doi})
    )


async def _activities(owlat: Application) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Every contact's timeline `(type, metadata)` by email, oldest first: its stored
    activities with its import's `imported` entry (lib/activities.with_import_entry)."""

    async def read(ctx: Any) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for contact in await ctx.db.query("contacts").collect():
            rows = await (
                ctx.db.query("contactActivities")
                .with_index("by_contact", lambda q, c=contact: q.eq("contactId", c["_id"]))
                .order("desc")
                .collect()
            )
            page = await with_import_entry(ctx, contact, {"page": rows, "isDone": True})
            found[contact["email"]] = [
                (row["activityType"], dict(row.get("metadata") or {}))
                for row in reversed(page["page"])
            ]
        return found

    found = await in_query(owlat, read)  # (values come back as JSON: tuples as lists)
    return {email: [(kind, meta) for kind, meta in rows] for email, rows in found.items()}


def _csv(*rows: str) -> bytes:
    return ("Email,First\n" + "".join(f"{row}\n" for row in rows)).encode()


def _batch(import_id: str, rows: list[list[str]], start: float = 0.0) -> dict[str, Any]:
    return {
        "importId": import_id,
        "startOffset": start,
        "endOffset": start + 1,
        "columns": ["Email", "First"],
        "rows": rows,
    }


async def test_new_contacts_are_written_once_and_the_count_once_per_batch(
    owlat: Application,
) -> None:
    owner, _ = await _owner(owlat)
    list_id = await _list(owner)
    import_id = await _queued(owlat, owner, b"", listId=list_id)
    reads = {}
    for size, start in ((1, 0.0), (40, 1.0)):
        rows = [[f"n{start:.0f}-{i}@example.com", f"N{i}"] for i in range(size)]
        result = await owlat.run_mutation(
            "contactImports:applyBatch", _batch(import_id, rows, start), internal=True
        )
        assert result.read_set is not None
        # no contact is read back or patched after its insert
        assert result.read_set.intervals("contacts", "by_id") == []
        reads[size] = (
            len(result.read_set.intervals("mailingLists", "by_id")),
            len(result.read_set),
        )
    # the list is read as often for 40 rows as for 1; a new row reads its email lookup only
    assert reads[40][0] == reads[1][0]
    assert reads[40][1] == reads[1][1] + 39
    state = await _assert_exact(owlat)
    assert state["mailingLists"][list_id]["memberCount"] == 41
    contacts = list(state["contacts"].values())
    assert all(c["mailingListIds"] == [list_id] for c in contacts)
    assert {(r["status"], r["source"]) for r in state["mailingListMembers"].values()} == {
        ("subscribed", "import")
    }
    activities = await _activities(owlat)
    assert all(
        found == [("imported", {"importId": import_id, "listId": list_id})]
        for found in activities.values()
    )


async def test_a_new_contact_updated_later_in_its_batch_is_written_in_order(
    owlat: Application,
) -> None:
    """A batch holds its new contacts and writes them together (one `insert_many` per
    table); a later row of the same batch that updates one of them writes them first. The
    contacts trigger (a segment's maintained count), the list's count and each timeline
    stay exact."""
    owner, organization_id = await _owner(owlat)
    list_id = await _list(owner)
    segment_id = await owner.mutation("segments:create", {"name": "Pro", "filters": PRO_HIGH})
    await count_ready(owlat, segment_id)
    mapping = {
        "Email": "email",
        "First": "firstName",
        "Plan": "property:plan",
        "Score": "property:score",
    }
    data = (
        b"Email,First,Plan,Score\n"
        b"a@example.com,A,pro,70\n"
        b"b@example.com,B,pro,90\n"
        b"A@example.com,Again,free,\n"
        b"c@example.com,C,pro,10\n"
        b"b@example.com,B,pro,90\n"
    )
    done = await _import(owner, data, mapping=mapping, listId=list_id, onDuplicate="update")
    assert (done["imported"], done["updated"], done["skipped"]) == (3, 1, 1)
    contacts = await _contacts(owner)
    assert contacts["a@example.com"]["firstName"] == "Again"
    assert contacts["a@example.com"]["properties"] == {"plan": "free", "score": 70.0}
    assert await _check(owlat, owner, organization_id, segment_id, PRO_HIGH) == 1  # b
    state = await _assert_exact(owlat)
    assert state["mailingLists"][list_id]["memberCount"] == 3
    activities = await _activities(owlat)
    created = ("imported", {"importId": done["_id"], "listId": list_id})
    assert activities["a@example.com"] == [
        created,
        ("updated", {"source": "import", "fields": "firstName"}),
    ]
    assert activities["b@example.com"] == activities["c@example.com"] == [created]


@pytest.mark.parametrize("rows_per_batch", [3, contact_import.BATCH_ROWS])
async def test_skip_then_update_into_a_list_keeps_counts_exact(
    owlat: Application, monkeypatch: pytest.MonkeyPatch, rows_per_batch: int
) -> None:
    """Duplicates in the file (also across batches), an existing member, an existing
    unsubscribed non-member, a blocked address and a bad row."""
    monkeypatch.setattr(contact_import, "BATCH_ROWS", rows_per_batch)
    owner, _ = await _owner(owlat)
    list_id = await _list(owner)
    member = await owner.mutation("contacts:createFromSession", {"email": "member@example.com"})
    await owner.mutation("mailingLists:addContact", {"listId": list_id, "contactId": member})
    other = await owner.mutation("contacts:createFromSession", {"email": "other@example.com"})
    await owner.mutation("contacts:update", {"contactId": other, "unsubscribed": True})
    await owner.mutation("blockedEmails:add", {"email": "blocked@example.com", "reason": "bounced"})
    data = _csv(
        "new1@example.com,One",
        "member@example.com,Member",
        "NEW1@example.com,Again",
        "other@example.com,Other",
        "blocked@example.com,Blocked",
        "bad,X",
        "new2@example.com,Two",
        "new1@example.com,Third",
    )
    skipped = await _import(owner, data, mapping=EMAIL, listId=list_id)
    assert (skipped["imported"], skipped["skipped"], skipped["failed"]) == (3, 4, 1)
    state = await _assert_exact(owlat)
    assert state["mailingLists"][list_id]["memberCount"] == 5
    contacts = await _contacts(owner)
    assert contacts["new1@example.com"]["firstName"] == "One"
    assert "unsubscribedAt" not in contacts["other@example.com"]  # as addContact does
    activities = await _activities(owlat)
    created = [("imported", {"importId": skipped["_id"], "listId": list_id})]
    # blocked addresses are imported like any other (suppression applies when sending)
    for email in ("new1@example.com", "new2@example.com", "blocked@example.com"):
        assert activities[email] == created, email
    assert [a for a in activities["other@example.com"] if a[0] == "list_subscribed"] == [
        ("list_subscribed", {"listId": list_id, "listName": "News", "source": "import"})
    ]
    assert [a for a, _ in activities["member@example.com"]] == ["created", "list_subscribed"]

    updated = await _import(
        owner,
        data + b"new3@example.com,Three\n",
        mapping=EMAIL,
        listId=list_id,
        onDuplicate="update",
    )
    # updated: member, NEW1 (One → Again), other, new1 (Again → Third); unchanged: new1's
    # first row, blocked, new2
    assert (updated["imported"], updated["updated"], updated["skipped"]) == (1, 4, 3)
    assert updated["failed"] == 1
    state = await _assert_exact(owlat)
    assert state["mailingLists"][list_id]["memberCount"] == 6
    contacts = await _contacts(owner)
    assert contacts["new1@example.com"]["firstName"] == "Third"
    assert contacts["new3@example.com"]["mailingListIds"] == [list_id]
    assert len(state["mailingListMembers"]) == 6


async def test_double_opt_in_list_gets_pending_members_and_mails(
    owlat: Application, tmp_path: Path
) -> None:
    owner, _ = await _owner(owlat)
    list_id = await _list(owner, doi=True)
    pending = await owner.mutation("contacts:createFromSession", {"email": "pending@example.com"})
    await owner.mutation("mailingLists:addContact", {"listId": list_id, "contactId": pending})
    confirmed = await owner.mutation(
        "contacts:createFromSession", {"email": "confirmed@example.com"}
    )

    async def confirm(ctx: Any) -> None:
        await ctx.db.patch(confirmed, {"doiStatus": "confirmed"})

    await in_mutation(owlat, confirm)
    data = _csv("new@example.com,New", "confirmed@example.com,", "pending@example.com,")
    done = await _import(owner, data, mapping=EMAIL, listId=list_id)
    assert (done["imported"], done["skipped"]) == (1, 2)
    state = await _assert_exact(owlat)
    assert (
        state["mailingLists"][list_id]["memberCount"],
        state["mailingLists"][list_id]["pendingCount"],
    ) == (1, 2)
    contacts = await _contacts(owner)
    assert contacts["new@example.com"]["doiStatus"] == "pending"
    statuses = {r["contactId"]: r["status"] for r in state["mailingListMembers"].values()}
    assert statuses == {
        contacts["new@example.com"]["_id"]: "pending",
        confirmed: "subscribed",
        pending: "pending",
    }
    activities = await _activities(owlat)
    assert activities["new@example.com"] == [
        ("imported", {"importId": done["_id"], "listId": list_id}),
        (
            "list_subscribed",
            {"listId": list_id, "listName": "News", "source": "import", "status": "pending"},
        ),
    ]
    mails = await _wait_for_mail(tmp_path, 2)
    assert sorted(m["To"] for m in mails) == ["new@example.com", "pending@example.com"]


async def test_the_costliest_batch_fits_in_one_transaction(owlat: Application) -> None:
    """BATCH_ROWS existing contacts, each changed by `update` and new to the list: the
    per-row reads the BATCH_ROWS comment counts (4) stay within the transaction's limit."""
    owner, organization_id = await _owner(owlat)
    list_id = await _list(owner)
    rows = contact_import.BATCH_ROWS

    async def existing(ctx: Any) -> None:
        for i in range(rows):
            await ctx.db.insert(
                "contacts",
                {
                    "organizationId": organization_id,
                    "email": f"c{i}@example.com",
                    "source": "api",
                    "properties": {},
                    "createdAt": 1.0,
                    "updatedAt": 1.0,
                },
            )

    await in_mutation(owlat, existing)
    import_id = await _queued(owlat, owner, b"", listId=list_id, onDuplicate="update")
    batch = _batch(import_id, [[f"c{i}@example.com", f"C{i}"] for i in range(rows)])
    result = await owlat.run_mutation("contactImports:applyBatch", batch, internal=True)
    assert result.read_set is not None and len(result.read_set) <= 4 * rows + 10
    found = await owner.query("contactImports:get", {"importId": import_id})
    assert (found["updated"], found["rowsDone"]) == (rows, rows)
    state = await _assert_exact(owlat)
    assert state["mailingLists"][list_id]["memberCount"] == rows


async def test_a_deleted_list_fails_the_import(owlat: Application) -> None:
    owner, _ = await _owner(owlat)
    list_id = await _list(owner)
    import_id = await _queued(owlat, owner, b"", listId=list_id)
    await owner.mutation("mailingLists:delete", {"listId": list_id})
    result = await owlat.run_mutation(
        "contactImports:applyBatch", _batch(import_id, [["a@example.com", "A"]]), internal=True
    )
    assert result.value == {"byteOffset": 0, "stop": True}
    found = await owner.query("contactImports:get", {"importId": import_id})
    assert (found["status"], found["error"]) == ("failed", "The mailing list was deleted")
    assert found["rowsDone"] == 0 and await _contacts(owner) == {}


async def test_a_batch_over_a_transaction_limit_is_split(
    owlat: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5,000 new rows read 5,000 index ranges (the limit is 4,096): the worker retries
    the batch in halves, and every row is applied once."""
    monkeypatch.setattr(contact_import, "BATCH_ROWS", 5000)
    owner, _ = await _owner(owlat)
    list_id = await _list(owner)
    data = _csv(*(f"u{i}@example.com,U{i}" for i in range(5000)))
    done = await _import(owner, data, mapping=EMAIL, listId=list_id)
    assert (done["status"], done["imported"], done["rowsDone"]) == ("completed", 5000, 5000)

    async def recount(ctx: Any) -> list[int]:
        members = await ctx.db.query("mailingListMembers").collect()
        contacts = await ctx.db.query("contacts").collect()
        listed = [c for c in contacts if c.get("mailingListIds") == [list_id]]
        return [(await ctx.db.get(list_id))["memberCount"], len(members), len(listed)]

    assert await in_query(owlat, recount) == [5000, 5000, 5000]


async def _timeline(caller: Caller, contact_id: str, per_page: int) -> list[dict[str, Any]]:
    """`contacts:activities` of the contact, newest first, read `per_page` at a time."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await caller.query(
            "contacts:activities",
            {"contactId": contact_id, "paginationOpts": {"numItems": per_page, "cursor": cursor}},
        )
        rows += page["page"]
        if page["isDone"]:
            return rows
        cursor = page["continueCursor"]


async def test_an_imported_contacts_timeline_shows_the_import_once_in_order(
    owlat: Application,
) -> None:
    """No activity is stored per imported contact: `contacts:activities` shows the import's
    `imported` entry where it was (after everything at or after the contact's creation,
    before anything earlier), exactly once whatever the page size."""
    owner, _ = await _owner(owlat)
    list_id = await _list(owner)
    other_list = await owner.mutation(
        "mailingLists:create", {"name": "Other", "requireDoubleOptIn": False}
    )
    done = await _import(owner, _csv("a@example.com,A"), mapping=EMAIL, listId=list_id)
    contact = (await _contacts(owner))["a@example.com"]
    assert "importId" not in contact  # not part of the contact's public shape
    await owner.mutation("contacts:update", {"contactId": contact["_id"], "firstName": "Ann"})
    await owner.mutation(
        "mailingLists:addContact", {"listId": other_list, "contactId": contact["_id"]}
    )

    async def backdated(ctx: Any) -> None:  # two events older than the contact
        for older in (1, 2):
            await ctx.db.insert(
                "contactActivities",
                {
                    "organizationId": contact["organizationId"],
                    "contactId": contact["_id"],
                    "activityType": "event_received",
                    "occurredAt": contact["createdAt"] - older,
                },
            )

    await in_mutation(owlat, backdated)
    stored = await in_query(owlat, lambda ctx: ctx.db.query("contactActivities").collect())
    assert [row["activityType"] for row in stored].count("imported") == 0
    expected = ["list_subscribed", "updated", "imported", "event_received", "event_received"]
    for per_page in (1, 2, 3, 100):
        timeline = await _timeline(owner, contact["_id"], per_page)
        assert [row["activityType"] for row in timeline] == expected, per_page
    imported = timeline[2]
    assert imported["metadata"] == {"importId": done["_id"], "listId": list_id}
    assert imported["occurredAt"] == contact["createdAt"] and imported["userId"]
    assert imported["contactId"] == contact["_id"] and imported["_id"] == done["_id"]


async def test_a_resumed_import_and_a_reimport_give_each_contact_one_imported_entry(
    owlat: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import whose worker crashed after its first batch (applied twice, once in effect)
    and was resumed, then a re-import of the same contacts plus new ones (`update`): every
    contact is a member once, the list's count is exact, and each timeline names the import
    that created the contact once (a re-import never renames it; it adds `updated`)."""
    monkeypatch.setattr(contact_import, "BATCH_ROWS", 4)
    owner, _ = await _owner(owlat)
    list_id = await _list(owner)
    lines = [f"p{i}@example.com,P{i}" for i in range(10)]
    data = _csv(*lines)
    header_end = len(b"Email,First\n")
    first_id = await _queued(owlat, owner, data, byte_offset=header_end, listId=list_id)
    crashed = {
        **_batch(import_id=first_id, rows=[line.split(",") for line in lines[:3]]),
        "startOffset": header_end,
        "endOffset": header_end + sum(len(line) + 1 for line in lines[:3]),
    }
    for _ in range(2):  # the crashed worker's batch, and its retry
        await owlat.run_mutation("contactImports:applyBatch", crashed, internal=True)
    found = await owner.query("contactImports:get", {"importId": first_id})
    assert (found["rowsDone"], found["imported"]) == (3, 3)
    await owlat.run_action("contactImports:run", {"importId": first_id}, internal=True)
    first = await _finished(owner, first_id)
    assert (first["status"], first["imported"], first["rowsDone"]) == ("completed", 10, 10)
    again = _csv(*lines[:5], "p5@example.com,Renamed", "new1@example.com,N", "new2@example.com,N")
    second = await _import(owner, again, mapping=EMAIL, listId=list_id, onDuplicate="update")
    assert (second["imported"], second["updated"], second["skipped"]) == (2, 1, 5)
    state = await _assert_exact(owlat)
    assert state["mailingLists"][list_id]["memberCount"] == 12
    assert len(state["mailingListMembers"]) == len(state["contacts"]) == 12
    by_first = ("imported", {"importId": first_id, "listId": list_id})
    by_second = ("imported", {"importId": second["_id"], "listId": list_id})
    activities = await _activities(owlat)
    for i in range(10):
        expected = [by_first]
        if i == 5:
            expected.append(("updated", {"source": "import", "fields": "firstName"}))
        assert activities[f"p{i}@example.com"] == expected, i
    assert activities["new1@example.com"] == activities["new2@example.com"] == [by_second]
