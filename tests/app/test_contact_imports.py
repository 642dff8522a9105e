"""contactImports:* — CSV imports streamed from a stored file (reference §7.1)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib import contact_import, csv_import, instance
from owlat.app.lib.session_organization import now_ms
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.storage import store_file
from owlat.runtime.storage.upload_tokens import UploadGrant
from owlat.runtime.testing import in_mutation, in_query, open_test_app
from tests.app.conftest import (
    BASE_URL,
    FAST,
    Caller,
    owner_and_editor,
    signed_in,
    uploaded,
    with_organization,
)


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


MAPPING = {
    "Email": "email",
    "First": "firstName",
    "Last": "lastName",
    "Plan": "property:plan",
    "Score": "property:score",
    "Notes": "skip",
}
PAGE = {"numItems": 100, "cursor": None}


async def _owner(owlat: Application, slug: str = "acme") -> tuple[Caller, str]:
    owner = await signed_in(owlat, f"owner@{slug}.example")
    organization_id = await with_organization(owner, slug)
    for key, kind in (("plan", "string"), ("score", "number")):
        await owner.mutation(
            "contactProperties:create", {"key": key, "label": key.title(), "type": kind}
        )
    return owner, organization_id


async def _import(
    caller: Caller, data: bytes, mapping: dict[str, str] | None = None, **options: Any
) -> dict[str, Any]:
    organization = await caller.query("organizations:getActive")
    storage_id = await uploaded(caller.app, organization["_id"], data)
    import_id = await caller.mutation(
        "contactImports:start",
        {
            "storageId": storage_id,
            "fileName": "people.csv",
            "mapping": mapping or MAPPING,
            "onDuplicate": options.pop("onDuplicate", "skip"),
            **options,
        },
    )
    return await _finished(caller, import_id)


async def _finished(caller: Caller, import_id: str) -> dict[str, Any]:
    async with asyncio.timeout(100):  # a 5,000-row import on PostgreSQL: ~10 s, 50 s loaded
        while True:
            found = await caller.query("contactImports:get", {"importId": import_id})
            if found["status"] not in ("queued", "running"):
                return dict(found)
            await asyncio.sleep(0.02)


async def _contacts(caller: Caller) -> dict[str, dict[str, Any]]:
    page = await caller.query(
        "contacts:listFromSession", {"paginationOpts": {"numItems": 500, "cursor": None}}
    )
    return {c["email"]: c for c in page["page"]}


async def _errors(caller: Caller, import_id: str) -> list[tuple[int, str | None, str]]:
    page = await caller.query(
        "contactImports:errors", {"importId": import_id, "paginationOpts": PAGE}
    )
    return [(int(e["row"]), e.get("column"), e["reason"]) for e in page["page"]]


@pytest.mark.parametrize("chunk", [csv_import.CHUNK_BYTES, 5])
async def test_import_with_mapping_properties_bom_and_quoted_newlines(
    owlat: Application, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """With 5-byte reads every row, and the quoted newlines, are cut by chunk ends."""
    monkeypatch.setattr(csv_import, "CHUNK_BYTES", chunk)
    owner, organization_id = await _owner(owlat)
    data = (
        csv_import.BOM
        + b"Email,First,Last,Plan,Score,Notes\r\n"
        + b" Ada@Example.com ,Ada,Lovelace,pro,42,x\r\n"
        + b'bob@example.com,"Bob ""the builder""",Smith,"free\nplan",7,"multi\nline, note"\r\n'
        + b"\r\n"
        + "carol@example.com,Čarol,,,,\r\n".encode()
    )
    done = await _import(owner, data)
    assert done["status"] == "completed" and done["finishedAt"] >= done["createdAt"]
    assert (done["totalRows"], done["rowsDone"]) == (3, 3)
    assert (done["imported"], done["updated"], done["skipped"], done["failed"]) == (3, 0, 0, 0)
    assert done["byteOffset"] == len(data)
    contacts = await _contacts(owner)
    assert set(contacts) == {"ada@example.com", "bob@example.com", "carol@example.com"}
    ada, bob, carol = (contacts[e] for e in sorted(contacts))
    assert ada["firstName"] == "Ada" and ada["properties"] == {"plan": "pro", "score": 42.0}
    assert ada["source"] == "import" and ada["organizationId"] == organization_id
    assert bob["firstName"] == 'Bob "the builder"' and bob["properties"]["plan"] == "free\nplan"
    assert carol["firstName"] == "Čarol" and "lastName" not in carol
    assert carol["properties"] == {}
    timeline = await owner.query(
        "contacts:activities", {"contactId": ada["_id"], "paginationOpts": PAGE}
    )
    (activity,) = timeline["page"]
    assert activity["activityType"] == "imported"
    assert activity["metadata"] == {"importId": done["_id"]}


async def test_duplicates_skip_and_update(owlat: Application) -> None:
    owner, _ = await _owner(owlat)
    await owner.mutation(
        "contacts:createFromSession",
        {"email": "old@example.com", "firstName": "Old", "properties": {"plan": "free"}},
    )
    data = (
        b"Email,First,Last,Plan,Score,Notes\n"
        b"old@example.com,Newer,,pro,,\n"
        b"new@example.com,New,,,,\n"
        b"NEW@example.com,Again,,,3,\n"
        b"old@example.com,Newer,,pro,,\n"
    )
    skipped = await _import(owner, data)
    assert (skipped["imported"], skipped["updated"], skipped["skipped"]) == (1, 0, 3)
    contacts = await _contacts(owner)
    assert contacts["old@example.com"]["firstName"] == "Old"
    assert contacts["new@example.com"]["firstName"] == "New"
    updated = await _import(owner, data, onDuplicate="update")
    # old: updated; new: updated (Again, score 3); NEW again: no change; old again: no change
    assert (updated["imported"], updated["updated"], updated["skipped"]) == (0, 2, 2)
    contacts = await _contacts(owner)
    assert contacts["old@example.com"]["firstName"] == "Newer"
    assert contacts["old@example.com"]["properties"] == {"plan": "pro"}
    assert contacts["new@example.com"]["firstName"] == "Again"
    assert contacts["new@example.com"]["properties"] == {"score": 3.0}
    assert len(contacts) == 2


async def test_row_errors_are_recorded_without_aborting(owlat: Application) -> None:
    owner, _ = await _owner(owlat)
    data = (
        b"Email,First,Last,Plan,Score,Notes\n"
        b"not-an-email,A,,,,\n"
        b"ok@example.com,Ok,,,12,\n"
        b",NoEmail,,,,\n"
        b"bad-score@example.com,B,,,lots,\n" + b"long@example.com," + b"x" * 201 + b",,,,\n"
        b"tail@example.com\n"
    )
    done = await _import(owner, data)
    assert done["status"] == "completed"
    assert (done["imported"], done["failed"], done["rowsDone"]) == (2, 4, 6)
    assert await _errors(owner, done["_id"]) == [
        (1, "Email", "Invalid email address: 'not-an-email'"),
        (3, "Email", "Email is missing"),
        (4, "Score", 'Property "score" must be a number'),
        (5, "First", "First name must be at most 200 characters"),
    ]
    assert set(await _contacts(owner)) == {"ok@example.com", "tail@example.com"}


async def test_stored_errors_are_capped_but_all_counted(
    owlat: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contact_import, "MAX_STORED_ERRORS", 3)
    owner, _ = await _owner(owlat)
    data = b"Email\n" + b"bad\n" * 7
    done = await _import(owner, data, mapping={"Email": "email"})
    assert done["failed"] == 7
    assert [row for row, _, _ in await _errors(owner, done["_id"])] == [1, 2, 3]


async def test_file_level_failures(owlat: Application) -> None:
    owner, _ = await _owner(owlat)
    missing = await _import(owner, b"Mail,First\na@example.com,A\n", mapping={"Email": "email"})
    assert missing["status"] == "failed"
    assert missing["error"] == 'The file has no column "Email" (its header: Mail, First)'
    latin = await _import(owner, b"Email\nb\xe9@example.com\n", mapping={"Email": "email"})
    assert latin["status"] == "failed" and "not UTF-8" in latin["error"]
    empty = await _import(owner, b"", mapping={"Email": "email"})
    assert empty["status"] == "failed" and empty["error"] == "The file has no header row"


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"A": "firstName"}, r"^Map exactly one column to email \(found none\)$"),
        ({"A": "email", "B": "email"}, r'^Map exactly one column to email \(found "A", "B"\)$'),
        ({"A": "email", "B": "phone"}, r"^Column \"B\" maps to 'phone': use one of email, "),
        ({"A": "email", "B": "property:nope"}, r'^Column "B" maps to unknown property "nope"'),
        ({"A": "email", "B": "firstName", "C": "firstName"}, "^More than one column maps to"),
    ],
)
async def test_start_refuses_bad_mappings(
    owlat: Application, mapping: dict[str, str], message: str
) -> None:
    owner, organization_id = await _owner(owlat)
    storage_id = await uploaded(owlat, organization_id, b"A\n")
    with pytest.raises(ConvexError, match=message):
        await owner.mutation(
            "contactImports:start",
            {"storageId": storage_id, "mapping": mapping, "onDuplicate": "skip"},
        )


async def test_permissions_and_other_organizations(owlat: Application) -> None:
    owner, organization_id = await _owner(owlat)
    other, _ = await _owner(owlat, "other")
    editor = await signed_in(owlat, "editor@acme.example")
    invitation = await owner.mutation(
        "invitations:invite", {"email": editor.email, "role": "editor"}
    )
    await editor.mutation("invitations:accept", {"invitationId": invitation["_id"]})
    await editor.mutation("organizations:setActive", {"organizationId": organization_id})
    storage_id = await uploaded(owlat, organization_id, b"Email\na@example.com\n")
    args = {"storageId": storage_id, "mapping": {"Email": "email"}, "onDuplicate": "skip"}
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("contactImports:start", args)
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("contactImports:generateUploadUrl")
    url = await owner.mutation("contactImports:generateUploadUrl")
    assert "/api/storage/upload?token=" in url
    # the file was uploaded for acme: another organization cannot import it, before or
    # after acme does, nor see the import
    with pytest.raises(ConvexError, match="^File not found$"):
        await other.mutation("contactImports:start", args)
    import_id = await owner.mutation("contactImports:start", args)
    await _finished(owner, import_id)
    assert (await editor.query("contactImports:get", {"importId": import_id}))["imported"] == 1
    with pytest.raises(ConvexError, match="^File not found$"):
        await other.mutation("contactImports:start", args)
    assert await other.query("contactImports:get", {"importId": import_id}) is None
    with pytest.raises(ConvexError, match="^Import not found$"):
        await other.query("contactImports:errors", {"importId": import_id, "paginationOpts": PAGE})
    with pytest.raises(ConvexError, match="^Import not found$"):
        await other.mutation("contactImports:cancel", {"importId": import_id})
    assert (await other.query("contactImports:list", {"paginationOpts": PAGE}))["page"] == []
    listed = await owner.query("contactImports:list", {"paginationOpts": PAGE})
    assert [i["_id"] for i in listed["page"]] == [import_id]
    # a list of another organization is refused
    with pytest.raises(ConvexError, match="^List not found$"):
        await owner.mutation(
            "contactImports:start", {**args, "listId": await _list_of(owlat, other)}
        )


async def test_an_import_file_is_bound_to_the_organization_it_was_uploaded_for(
    owlat: Application,
) -> None:
    """The upload URL names the organization (and the size limit) in its signed token; a
    file uploaded for another organization, or for none, is not found."""
    owner, organization_id = await _owner(owlat)
    _, other_id = await _owner(owlat, "other")
    url = await owner.mutation("contactImports:generateUploadUrl")
    storage = owlat.storage
    assert storage is not None
    grant = storage.tokens.check(url.partition("?token=")[2])
    assert grant == UploadGrant(
        max_bytes=instance.current().import_max_bytes, owner=organization_id
    )
    cli = await owlat.run_mutation(
        "contactImports:uploadUrlForOrganization", {"organizationId": other_id}, internal=True
    )
    assert cli.value["maxBytes"] == instance.current().import_max_bytes
    assert storage.tokens.check(cli.value["uploadUrl"].partition("?token=")[2]).owner == other_id
    args = {"mapping": {"Email": "email"}, "onDuplicate": "skip"}
    for storage_id in (
        await uploaded(owlat, other_id, b"Email\na@example.com\n"),
        await store_file(owlat, b"Email\na@example.com\n"),  # stored with no owner
    ):
        with pytest.raises(ConvexError, match="^File not found$"):
            await owner.mutation("contactImports:start", {"storageId": storage_id, **args})
        with pytest.raises(ConvexError, match="^File not found$"):
            await owlat.run_mutation(
                "contactImports:startForOrganization",
                {"organizationId": organization_id, "storageId": storage_id, **args},
                internal=True,
            )
    assert (await owner.query("contactImports:list", {"paginationOpts": PAGE}))["page"] == []


async def _list_of(owlat: Application, caller: Caller) -> str:
    return str(
        await caller.mutation("mailingLists:create", {"name": "L", "requireDoubleOptIn": False})
    )


async def test_import_into_a_list(owlat: Application) -> None:
    owner, _ = await _owner(owlat)
    list_id = await _list_of(owlat, owner)
    member = await owner.mutation("contacts:createFromSession", {"email": "old@example.com"})
    await owner.mutation("mailingLists:addContact", {"listId": list_id, "contactId": member})
    data = b"Email\nold@example.com\nnew@example.com\nNew@example.com\nbad\n"
    done = await _import(owner, data, mapping={"Email": "email"}, listId=list_id)
    assert (done["imported"], done["skipped"], done["failed"]) == (1, 2, 1)
    assert done["listId"] == list_id
    found = await owner.query("mailingLists:get", {"listId": list_id})
    assert found["memberCount"] == 2
    contacts = await _contacts(owner)
    assert contacts["new@example.com"]["mailingListIds"] == [list_id]


async def _start_jobs_done(owlat: Application) -> None:
    """Wait until the server's start job has resumed stalled imports: run later, it would
    give a worker to the import a test drives by hand (its `updatedAt` is long past)."""

    async def pending(ctx: Any) -> bool:
        jobs = await ctx.db.system.query("_scheduled_functions").collect()
        return any(
            job["name"] == "contactImports:resumeStalled"
            and job["state"]["kind"] in ("pending", "inProgress")
            for job in jobs
        )

    for _ in range(1000):
        if not await in_query(owlat, pending):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the start job that resumes imports did not run within 10 s")


async def _queued(
    owlat: Application, caller: Caller, data: bytes, byte_offset: int = 0, **fields: Any
) -> str:
    """A running import created without a worker (the test drives the batches); `fields`
    override its defaults (e.g. `listId`, `onDuplicate`)."""
    await _start_jobs_done(owlat)
    organization = await caller.query("organizations:getActive")
    storage_id = await uploaded(owlat, organization["_id"], data)

    async def insert(ctx: Any) -> str:
        now = 1.0
        return str(
            await ctx.db.insert(
                "contactImports",
                {
                    "organizationId": organization["_id"],
                    "storageId": storage_id,
                    "mapping": {"Email": "email", "First": "firstName"},
                    "onDuplicate": "skip",
                    "status": "running",
                    "rowsDone": 0,
                    "byteOffset": byte_offset,
                    "imported": 0,
                    "updated": 0,
                    "skipped": 0,
                    "failed": 0,
                    "createdAt": now,
                    "updatedAt": now,
                    **fields,
                },
            )
        )

    return str(await in_mutation(owlat, insert))


async def test_a_batch_applies_once(owlat: Application) -> None:
    owner, _ = await _owner(owlat)
    import_id = await _queued(owlat, owner, b"Email,First\na@example.com,A\nb@example.com,B\n")
    batch = {
        "importId": import_id,
        "startOffset": 0.0,
        "endOffset": 30.0,
        "columns": ["Email", "First"],
        "rows": [["a@example.com", "A"], ["bad", "B"]],
    }
    first = await owlat.run_mutation("contactImports:applyBatch", batch, internal=True)
    again = await owlat.run_mutation("contactImports:applyBatch", batch, internal=True)
    assert first.value == {"byteOffset": 30.0, "stop": False}
    assert again.value == {"byteOffset": 30.0, "stop": False}
    found = await owner.query("contactImports:get", {"importId": import_id})
    assert (found["rowsDone"], found["imported"], found["failed"]) == (2, 1, 1)
    assert len(await _errors(owner, import_id)) == 1
    assert set(await _contacts(owner)) == {"a@example.com"}
    # the next batch continues the row numbers where the last one ended
    await owlat.run_mutation(
        "contactImports:applyBatch",
        {**batch, "startOffset": 30.0, "endOffset": 40.0, "rows": [["worse", ""]]},
        internal=True,
    )
    assert [row for row, _, _ in await _errors(owner, import_id)] == [2, 3]


async def test_a_rerun_resumes_from_the_stored_offset(owlat: Application) -> None:
    owner, _ = await _owner(owlat)
    lines = [f"p{i}@example.com,P{i}" for i in range(30)]
    data = ("Email,First\n" + "\n".join(lines) + "\n").encode()
    import_id = await _queued(owlat, owner, data)
    header_end = len(b"Email,First\n")
    ten = sum(len(line) + 1 for line in lines[:10])
    await owlat.run_mutation(
        "contactImports:applyBatch",
        {
            "importId": import_id,
            "startOffset": 0.0,
            "endOffset": float(header_end + ten),
            "columns": ["Email", "First"],
            "rows": [line.split(",") for line in lines[:10]],
        },
        internal=True,
    )
    # a worker that crashed after that commit starts again from the stored offset
    await owlat.run_action("contactImports:run", {"importId": import_id}, internal=True)
    done = await _finished(owner, import_id)
    assert done["status"] == "completed" and done["rowsDone"] == 30
    assert done["imported"] == 30 and done["skipped"] == 0
    assert len(await _contacts(owner)) == 30


async def test_a_stalled_import_is_resumed(owlat: Application) -> None:
    """A running import whose worker was lost (not advanced for a minute) gets a new one."""
    owner, _ = await _owner(owlat)
    data = b"Email,First\na@example.com,A\nb@x.io,B\n"
    import_id = await _queued(owlat, owner, data, byte_offset=len(b"Email,First\n"))
    resume = "contactImports:resumeStalled"
    assert (await owlat.run_mutation(resume, {}, internal=True)).value == 1  # updated at 1 ms
    assert (await owlat.run_mutation(resume, {}, internal=True)).value == 0  # just resumed
    done = await _finished(owner, import_id)
    assert (done["status"], done["imported"], done["failed"]) == ("completed", 2, 0)


async def test_a_replaced_worker_stops(owlat: Application) -> None:
    """Resuming gives the import a worker of the next generation; the one it replaces (alive
    after all, e.g. on another node) changes nothing and stops."""
    owner, _ = await _owner(owlat)
    data = b"Email,First\na@example.com,A\n"
    start = float(len(b"Email,First\n"))
    import_id = await _queued(owlat, owner, data, byte_offset=int(start), worker=3.0)
    await owlat.run_action(
        "contactImports:run", {"importId": import_id, "worker": 2.0}, internal=True
    )
    batch = {
        "importId": import_id,
        "worker": 2.0,
        "startOffset": start,
        "endOffset": float(len(data)),
        "columns": ["Email", "First"],
        "rows": [["a@example.com", "A"]],
    }
    stale = await owlat.run_mutation("contactImports:applyBatch", batch, internal=True)
    assert stale.value == {"byteOffset": start, "stop": True}
    found = await owner.query("contactImports:get", {"importId": import_id})
    assert (found["status"], found["rowsDone"], found["byteOffset"]) == ("running", 0, start)
    assert await _contacts(owner) == {}
    await owlat.run_action(
        "contactImports:run", {"importId": import_id, "worker": 3.0}, internal=True
    )
    done = await _finished(owner, import_id)
    assert (done["status"], done["imported"]) == ("completed", 1)


async def test_an_import_interrupted_by_a_restart_resumes_when_the_server_starts(
    tmp_path: Path, database_url: str
) -> None:
    """A server killed mid-import (its worker gone, the import advanced just before): the
    next server start resumes it at once, not after the minute-long stall check."""
    instance.configure(tmp_path, BASE_URL, **FAST)  # type: ignore[arg-type]
    data = b"Email,First\n" + b"".join(b"p%d@example.com,P%d\n" % (i, i) for i in range(50))
    async with open_test_app(
        "owlat.app", tmp_path, database_url=database_url, scheduler_parallelism=None
    ) as down:  # nothing runs the import
        owner, _ = await _owner(down)
        import_id = await _queued(
            down, owner, data, byte_offset=len(b"Email,First\n"), updatedAt=float(now_ms())
        )
    async with open_test_app("owlat.app", tmp_path, database_url=database_url) as restarted:
        owner = dataclasses.replace(owner, app=restarted)
        async with asyncio.timeout(30):  # the stall check would take over a minute
            done = await _finished(owner, import_id)
    assert (done["status"], done["imported"], done["worker"]) == ("completed", 50, 1)


async def test_cancel_stops_the_worker(owlat: Application) -> None:
    owner, _ = await _owner(owlat)
    import_id = await _queued(owlat, owner, b"Email,First\na@example.com,A\n")
    canceled = await owner.mutation("contactImports:cancel", {"importId": import_id})
    assert canceled["status"] == "canceled" and canceled["finishedAt"] > 0
    await owlat.run_action("contactImports:run", {"importId": import_id}, internal=True)
    found = await owner.query("contactImports:get", {"importId": import_id})
    assert found["rowsDone"] == 0 and found["status"] == "canceled"
    assert await _contacts(owner) == {}
    with pytest.raises(ConvexError, match="^The import is already canceled$"):
        await owner.mutation("contactImports:cancel", {"importId": import_id})


# SQLite only: what is tested here (progress, bounded reads of the stored file) does not
# depend on the engine.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_progress_is_visible_while_running_and_memory_stays_bounded(
    owlat: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of several chunks is read a chunk at a time, its progress shown batch by
    batch: 5,000 rows in 64 KiB chunks and batches of 500 rows (production's 1 MiB chunks
    took 50,000 rows, minutes under load, to check the same)."""
    owner, organization_id = await _owner(owlat)
    reads: list[int] = []
    real = csv_import.read_range

    async def measured(ctx: Any, key: str, start: int, end: int) -> bytes:
        data = await real(ctx, key, start, end)
        reads.append(len(data))
        return data

    monkeypatch.setattr(csv_import, "read_range", measured)
    monkeypatch.setattr(contact_import, "SLICE_SECONDS", 0.0)  # one batch per run
    monkeypatch.setattr(contact_import, "BATCH_ROWS", 500)
    monkeypatch.setattr(csv_import, "CHUNK_BYTES", 64 * 1024)  # the header read: 64 KiB
    rows = 5_000
    data = b"Email,First,Last,Plan,Score,Notes\n" + b"".join(
        b"user%d@example.com,First%d,Lastname,plan-%d,%d,some notes\n" % (i, i, i % 3, i)
        for i in range(rows)
    )
    storage_id = await uploaded(owlat, organization_id, data)
    import_id = await owner.mutation(
        "contactImports:start",
        {"storageId": storage_id, "mapping": MAPPING, "onDuplicate": "skip"},
    )
    seen: set[float] = set()
    async with asyncio.timeout(300):
        while True:
            found = await owner.query("contactImports:get", {"importId": import_id})
            if found["status"] == "running":
                assert found["totalRows"] == rows
                seen.add(found["rowsDone"])
            if found["status"] not in ("queued", "running"):
                break
            await asyncio.sleep(0.02)
    assert found["status"] == "completed" and found["imported"] == rows
    assert len([done for done in seen if 0 < done < rows]) >= 2  # progress seen mid-way
    assert len(data) > 2 * csv_import.CHUNK_BYTES, len(data)
    assert max(reads) <= csv_import.CHUNK_BYTES


def test_split_records_keeps_a_cut_row_for_the_next_chunk() -> None:
    data = b'a,b\n"x\ny",z\n"cut'
    records, used, unclosed = csv_import.split_records(data, at_end=False)
    assert records == [b"a,b", b'"x\ny",z'] and used == len(data) - 4 and not unclosed
    assert csv_import.parse_records(records) == [["a", "b"], ["x\ny", "z"]]
    split = csv_import.split_records(b'"cut", no newline', at_end=True)
    assert split == ([b'"cut", no newline'], 17, frozenset())
    counter = csv_import.RecordCounter()
    for chunk in (b'h\n"a\n', b'b"\n\nc', b"\n"):
        counter.feed(chunk)
    assert counter.finish() == 3  # h, "a\nb", c


@pytest.mark.parametrize(
    ("data", "at_end", "records", "unclosed"),
    [
        # never closed before the end of the file: that line alone, then the next ones
        (b'a,"b\nc,d\ne,f', True, [b'a,"b', b"c,d", b"e,f"], {0}),
        # ... or not yet known: left for the next chunk
        (b'a,b\nc,"d\ne,f\n', False, [b"a,b"], set()),
        # closed only by a stray quote further down: not one record, so no row is lost
        (b'a,"b\nc,d\ne,5" tall\nf,g\n', True, [b'a,"b', b"c,d", b'e,5" tall', b"f,g", b""], {0}),
        # a quote inside an unquoted field is not a quoted field
        (b'x,5" tall\ny,z', True, [b'x,5" tall', b"y,z"], set()),
        # closed on a later line, with a line break inside the field: one record
        (b'a,"b\nc"\nd\n', True, [b'a,"b\nc"', b"d", b""], set()),
    ],
)
def test_split_records_never_lets_an_unclosed_quote_swallow_rows(
    data: bytes, at_end: bool, records: list[bytes], unclosed: set[int]
) -> None:
    split = csv_import.split_records(data, at_end=at_end)
    assert (split.records, set(split.unclosed)) == (records, unclosed)
    assert split.used == min(len(data), sum(len(record) + 1 for record in records))


def test_a_quoted_field_runs_over_at_most_max_record_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(csv_import, "MAX_RECORD_LINES", 3)
    three = b'a,"1\n2\n3"\n'
    assert csv_import.split_records(three, at_end=False).records == [b'a,"1\n2\n3"']
    four = b'a,"1\n2\n3\n4"\nb,c\n'
    split = csv_import.split_records(four, at_end=False)
    assert split.records == [b'a,"1', b"2", b"3"] and split.unclosed == {0}
    assert csv_import.parse_records(split.records, split.unclosed) == [None, ["2"], ["3"]]


@pytest.mark.parametrize("chunk", [csv_import.CHUNK_BYTES, 7])
async def test_a_row_with_a_quote_never_closed_fails_alone(
    owlat: Application, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Row 2 opens a quoted field that never closes: it is a row error, and the 20 rows
    after it are imported (they were one swallowed row)."""
    monkeypatch.setattr(csv_import, "CHUNK_BYTES", chunk)
    owner, _ = await _owner(owlat)
    rows = b"".join(b"p%d@example.com,P%d\n" % (i, i) for i in range(20))
    data = b'Email,First\na@example.com,A\nb@example.com,"Bob\n' + rows
    done = await _import(owner, data, mapping={"Email": "email", "First": "firstName"})
    assert done["status"] == "completed"
    assert (done["totalRows"], done["rowsDone"], done["imported"], done["failed"]) == (
        22,
        22,
        21,
        1,
    )
    assert await _errors(owner, done["_id"]) == [(2, None, csv_import.UNCLOSED)]
    assert len(await _contacts(owner)) == 21


async def test_a_header_with_a_quote_never_closed_fails_the_import(owlat: Application) -> None:
    owner, _ = await _owner(owlat)
    done = await _import(owner, b'Email,"First\na@example.com,A\n', mapping={"Email": "email"})
    assert done["status"] == "failed"
    assert done["error"] == "A quoted field in the header row is never closed"


async def test_export_page_round_trip(owlat: Application) -> None:
    owner, organization_id = await _owner(owlat)
    data = b"Email,First,Last,Plan,Score,Notes\nada@example.com,Ada,L,pro,42,\nb@example.com,,,,,\n"
    await _import(owner, data)
    page = await owlat.run_query(
        "contactImports:exportPage",
        {"organizationId": organization_id, "cursor": None, "numItems": 1},
        internal=True,
    )
    header = page.value["header"]
    assert header == [*csv_import.EXPORT_COLUMNS, "plan", "score", "unsubscribedAt"]
    (row,) = page.value["rows"]
    assert row[:6] == ["ada@example.com", "Ada", "L", "", "", "import"]
    assert row[6].endswith("Z") and row[7:] == ["pro", "42", ""]
    assert not page.value["isDone"]
    rest = await owlat.run_query(
        "contactImports:exportPage",
        {"organizationId": organization_id, "cursor": page.value["continueCursor"], "numItems": 5},
        internal=True,
    )
    assert [r[0] for r in rest.value["rows"]] == ["b@example.com"] and rest.value["isDone"]


async def test_the_dashboard_exports_the_active_organization_page_by_page(
    owlat: Application,
) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    await owner.mutation(
        "contactProperties:create", {"key": "plan", "label": "Plan", "type": "string"}
    )
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        await owner.mutation("contacts:createFromSession", {"email": email})
    await owner.mutation("contacts:createFromSession", {"email": "gone@example.com"})
    (gone,) = [
        c
        for c in (await owner.query("contacts:listFromSession", {"paginationOpts": PAGE}))["page"]
        if c["email"] == "gone@example.com"
    ]
    await owner.mutation("contacts:delete", {"contactId": gone["_id"]})
    other = await signed_in(owlat, "owner@other.example")  # another organization's contact
    await with_organization(other, "other")
    await other.mutation("contacts:createFromSession", {"email": "other@example.com"})

    first = await owner.query("contactImports:exportCsvPage", {"cursor": None, "numItems": 2})
    assert first["header"] == [*csv_import.EXPORT_COLUMNS, "plan", "unsubscribedAt"]
    assert [row[0] for row in first["rows"]] == ["a@example.com", "b@example.com"]
    rest = await owner.query(
        "contactImports:exportCsvPage", {"cursor": first["continueCursor"], "numItems": 2}
    )
    assert [row[0] for row in rest["rows"]] == ["c@example.com"] and rest["isDone"]

    with pytest.raises(ConvexError, match="Admin access required"):
        await editor.query("contactImports:exportCsvPage", {"cursor": None, "numItems": 2})
    for bad in (0, 1001, 2.5):
        with pytest.raises(ConvexError, match="numItems must be 1 to 1000"):
            await owner.query("contactImports:exportCsvPage", {"cursor": None, "numItems": bad})


@pytest.mark.parametrize(
    ("value", "exported"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'=x", "''=x"),  # already quoted: one more, so the import gives it back
        ("-5", "-5"),  # plain numbers stay numbers
        ("+1.5", "+1.5"),
        ("-2e3", "-2e3"),
        ("'quoted'", "'quoted'"),
        ("Ada", "Ada"),
        ("", ""),
    ],
)
def test_formulas_are_escaped_on_export_and_unescaped_on_import(value: str, exported: str) -> None:
    assert csv_import.escape_formula(value) == exported
    assert csv_import.unescape_formula(exported) == value


def test_unescape_takes_the_quote_off_any_formula_character() -> None:
    """Files from tools that quote every cell starting so, numbers too."""
    assert csv_import.unescape_formula("'-5") == "-5"
    assert csv_import.unescape_formula("'abc") == "'abc"


async def test_an_export_escapes_formulas_and_imports_back_unchanged(owlat: Application) -> None:
    owner, organization_id = await _owner(owlat)
    names = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)"]
    data = "Email,First,Last,Plan,Score,Notes\n" + "".join(
        f"p{i}@example.com,{_quoted(name)},'=x,-1+1,-5,\n" for i, name in enumerate(names)
    )
    done = await _import(owner, data.encode())
    assert (done["imported"], done["failed"]) == (4, 0)
    page = await owlat.run_query(
        "contactImports:exportPage",
        {"organizationId": organization_id, "cursor": None, "numItems": 10},
        internal=True,
    )
    rows = page.value["rows"]
    # columns: email, firstName, lastName, ..., plan, score, unsubscribedAt
    assert [row[1] for row in rows] == ["'" + name for name in names]
    assert {(row[2], row[7], row[8]) for row in rows} == {("'=x", "'-1+1", "-5")}
    contacts = await _contacts(owner)
    assert contacts["p0@example.com"]["lastName"] == "=x"  # a quoted formula in the file
    assert contacts["p0@example.com"]["properties"] == {"plan": "-1+1", "score": -5.0}
    header = page.value["header"]
    exported = "\n".join(",".join(_quoted(cell) for cell in line) for line in [header, *rows])
    mapping = {"email": "email", "firstName": "firstName", "lastName": "lastName"}
    again = await _import(
        owner,
        exported.encode(),
        {**mapping, "plan": "property:plan", "score": "property:score"},
        onDuplicate="update",
    )
    assert (again["updated"], again["skipped"], again["failed"]) == (0, 4, 0)
    assert await _contacts(owner) == contacts


def _quoted(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'
