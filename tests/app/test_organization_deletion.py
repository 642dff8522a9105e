"""Deleting an organization (lib/organization_deletion.py): closed at once, then deleted in
bounded, resumable steps; every org-scoped table, its stored files and its SES identities;
another organization untouched."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib import instance
from owlat.app.lib import organization_deletion as deletion
from owlat.app.lib.domains import ses_deletion
from owlat.app.lib.tokens import token_hash
from owlat.app.schema import ORG_TABLES, schema
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query, open_test_app
from owlat.runtime.values.ids import new_id
from tests.app.campaign_setup import progress_until, ready_campaign
from tests.app.conftest import (
    BASE_URL,
    FAST,
    Caller,
    owner_and_editor,
    signed_in,
    uploaded,
    with_organization,
)
from tests.app.domains.dns_server import DnsServer
from tests.app.mail_setup import configure
from tests.app.sending.servers import Sink, smtp_server
from tests.app.test_campaigns import SENDER, _once_each, _smtp_list
from tests.s3 import MotoServer, free_port

STEP = "organizationDeletion:step"
PAGE = {"numItems": 10, "cursor": None}


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


@contextlib.asynccontextmanager
async def no_scheduler(tmp_path: Path, database_url: str) -> AsyncIterator[Application]:
    """An app whose scheduled functions run only when a test runs them."""
    instance.configure(tmp_path, BASE_URL, **FAST)  # type: ignore[arg-type]
    async with open_test_app(
        "owlat.app", tmp_path, database_url=database_url, scheduler_parallelism=None
    ) as app:
        yield app


async def _step(app: Application, organization_id: str) -> None:
    await app.run_mutation(STEP, {"organizationId": organization_id}, internal=True)


async def _steps_to_the_end(app: Application, organization_id: str) -> int:
    """Run steps until the organization is gone, then check nothing of it is left; how
    many steps it took."""
    steps = 0
    while await _exists(app, organization_id):
        await _step(app, organization_id)
        steps += 1
    assert not any((await _owned_rows(app, organization_id)).values())
    return steps


async def _exists(app: Application, document_id: str) -> bool:
    async def get(ctx: Any) -> bool:
        return await ctx.db.get(document_id) is not None

    return bool(await in_query(app, get))


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until `check()` holds (the scheduler's work is done)."""
    async with asyncio.timeout(30):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def _deleted(app: Application, organization_id: str) -> None:
    async def gone() -> bool:
        return not await _exists(app, organization_id)

    await _until(gone)


async def _owned_rows(app: Application, organization_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every org-scoped table of the organization, and its sessions."""

    async def read(ctx: Any) -> dict[str, list[dict[str, Any]]]:
        rows = {}
        for table in deletion.DELETION_ORDER:
            query = ctx.db.query(table)
            if table == deletion.SESSIONS:
                found = await query.with_index(
                    "by_active_org", lambda q: q.eq("activeOrganizationId", organization_id)
                ).collect()
            else:
                found = await query.with_index(
                    "by_org", lambda q: q.eq("organizationId", organization_id)
                ).collect()
            rows[table] = [dict(row) for row in found]
        return rows

    return dict(await in_query(app, read))


async def _files(app: Application, storage_ids: list[str]) -> dict[str, dict[str, Any] | None]:
    async def read(ctx: Any) -> dict[str, dict[str, Any] | None]:
        found = {}
        for storage_id in storage_ids:
            stored = await ctx.db.system.get(storage_id)
            found[storage_id] = None if stored is None else dict(stored)
        return found

    return dict(await in_query(app, read))


# -- what deletion covers ----------------------------------------------------------------------


def _storage_paths(validator: dict[str, Any], path: str = "") -> Iterator[str]:
    """The paths (`a.b`, `[]` into arrays) of the `_storage` ids a validator's JSON admits."""
    kind = validator["type"]
    if kind == "id" and validator["tableName"] == "_storage":
        yield path
    elif kind == "object":
        for name, field in validator["value"].items():
            yield from _storage_paths(field["fieldType"], f"{path}.{name}".lstrip("."))
    elif kind == "array":
        yield from _storage_paths(validator["value"], f"{path}[]")
    elif kind == "record":
        yield from _storage_paths(validator["values"]["fieldType"], f"{path}{{}}")
    elif kind == "union":
        for member in validator["value"]:
            yield from _storage_paths(member, path)


def test_deletion_covers_every_org_scoped_table_and_every_stored_file() -> None:
    """A new table with `organizationId`, or a new field holding a stored file, fails here
    until deletion covers it."""
    scoped = {
        name
        for name, table in schema.tables.items()
        if table.validator is not None and "organizationId" in table.validator.fields
    }
    assert sorted(deletion.DELETION_ORDER) == sorted({*scoped, deletion.SESSIONS})
    assert set(ORG_TABLES) == scoped
    files = {
        name: tuple(_storage_paths(table.validator.to_json()))
        for name, table in schema.tables.items()
        if table.validator is not None
    }
    assert {name: paths for name, paths in files.items() if paths} == deletion.STORAGE_FIELDS
    assert set(deletion.STORAGE_FIELDS) <= scoped
    order = deletion.DELETION_ORDER.index
    # the SES credentials are read while domains are deleted
    assert order("domains") < order("emailProviders")
    # the organization's own work stops before its contacts go
    for table in ("webhooks", "automations", "campaigns", "formEndpoints", "segmentCounts"):
        assert order(table) < order("contacts"), table


def test_storage_ids_follow_the_paths() -> None:
    row = {
        "attachments": [{"storageId": "a"}, {"url": "https://x"}, {"storageId": "b"}],
        "attachmentStorageIds": ["c"],
    }
    assert list(deletion.storage_ids("transactionalSends", row)) == ["a", "b", "c"]
    assert list(deletion.storage_ids("transactionalSends", {})) == []
    assert list(deletion.storage_ids("contacts", {"storageId": "x"})) == []


# -- a populated organization --------------------------------------------------------------


@dataclasses.dataclass
class _Sample:
    """Builds a document a table's validator accepts, every optional field present."""

    organization_id: str
    table_numbers: dict[str, int]
    file_id: str

    def value(self, validator: dict[str, Any]) -> Any:
        kind = validator["type"]
        if kind == "id":
            table = validator["tableName"]
            if table == "organizations":
                return self.organization_id
            if table == "_storage":
                return self.file_id
            return new_id(self.table_numbers[table])
        if kind == "object":
            return {k: self.value(f["fieldType"]) for k, f in validator["value"].items()}
        if kind == "array":
            return [self.value(validator["value"])]
        if kind == "union":
            return self.value(validator["value"][0])
        if kind == "literal":
            return validator["value"]
        simple = {"string": "x", "number": 1.0, "boolean": True, "null": None, "any": "x"}
        if kind in simple:
            return simple[kind]
        assert kind == "record", kind
        return {}


async def _populate(app: Application, owner: Caller, organization_id: str) -> list[str]:
    """A row in every org-scoped table (a stored file in each file field); the files."""
    files: list[str] = []

    async def insert(ctx: Any) -> None:
        catalog = ctx.db._txn.catalog
        numbers = {name: table.number for name, table in catalog.by_name.items()}
        tables = [t for t in reversed(deletion.DELETION_ORDER) if t != deletion.SESSIONS]
        for table, file_id in zip(tables, files, strict=True):  # contacts before triggers' tables
            sample = _Sample(organization_id, numbers, file_id)
            validator = schema.tables[table].validator
            assert validator is not None
            await ctx.db.insert(table, sample.value(validator.to_json()))

    for _ in range(len(deletion.DELETION_ORDER) - 1):
        files.append(await uploaded(app, organization_id, f"file of {organization_id}".encode()))
    await in_mutation(app, insert)
    await owner.mutation("organizations:setActive", {"organizationId": organization_id})
    return files


def _unreferenced(files: list[str]) -> set[str]:
    """The files `_populate` stored but put in no row (their table has no file field)."""
    tables = [t for t in reversed(deletion.DELETION_ORDER) if t != deletion.SESSIONS]
    return {f for t, f in zip(tables, files, strict=True) if t not in deletion.STORAGE_FIELDS}


async def test_a_populated_organization_goes_whole_and_another_stays_byte_identical(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deletion, "ROWS_PER_STEP", 10)
    async with no_scheduler(tmp_path, database_url) as app:
        owner = await signed_in(app, "owner@a.example")
        other = await signed_in(app, "owner@b.example")
        doomed = await with_organization(owner, "doomed")
        kept = await with_organization(other, "kept")
        doomed_files = await _populate(app, owner, doomed)
        kept_files = await _populate(app, other, kept)
        assert all((await _owned_rows(app, doomed)).values())

        asset = (await _owned_rows(app, doomed))["mediaAssets"][0]

        async def foreign_file(ctx: Any) -> None:
            """A row of one organization naming a file of the other (tenancy checks keep
            this from happening; deletion must not trust that)."""
            await ctx.db.patch(asset["_id"], {"storageId": kept_files[0]})

        await in_mutation(app, foreign_file)
        kept_rows, kept_stored = await _owned_rows(app, kept), await _files(app, kept_files)

        await owner.mutation("organizations:remove", {"organizationId": doomed})
        with pytest.raises(ConvexError, match="^Organization is being deleted$"):
            await owner.query("organizations:getFull", {"organizationId": doomed})
        with pytest.raises(ConvexError, match="^Organization is being deleted$"):
            await owner.mutation("organizations:remove", {"organizationId": doomed})
        assert await owner.query("organizations:listMine") == []
        assert await _steps_to_the_end(app, doomed) > 1  # no batch is the whole organization
        stored = await _files(app, doomed_files)
        left = {k for k, file in stored.items() if file is not None}
        assert left == {*_unreferenced(doomed_files), asset["storageId"]}
        assert await _owned_rows(app, kept) == kept_rows
        assert await _files(app, kept_files) == kept_stored
        assert (await other.query("organizations:getFull", {}))["_id"] == kept
        with pytest.raises(ConvexError, match="^No active organization$"):
            await owner.query("organizations:getActive")


# -- closed at once, batches, resuming -----------------------------------------------------


async def _removed(app: Application, contacts: int) -> tuple[Caller, str]:
    """An owner and their organization with `contacts` contacts, its deletion started."""
    owner = await signed_in(app, "owner@example.com")
    organization_id = await with_organization(owner, "acme")
    for n in range(contacts):
        await owner.mutation("contacts:createFromSession", {"email": f"c{n}@example.com"})
    await owner.mutation("organizations:remove", {"organizationId": organization_id})
    return owner, organization_id


async def test_it_is_closed_at_once_and_deleted_in_batches_a_failed_step_resumes(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deletion, "ROWS_PER_STEP", 4)
    async with no_scheduler(tmp_path, database_url) as app:
        owner = await signed_in(app, "owner@example.com")
        organization_id = await with_organization(owner, "acme")
        key = await owner.mutation("apiKeys:create", {"name": "CI", "scopes": ["contacts:read"]})
        for n in range(10):
            await owner.mutation("contacts:createFromSession", {"email": f"c{n}@example.com"})
        await owner.mutation("organizations:remove", {"organizationId": organization_id})
        # closed: no member, no key, no session active in it; its data still there
        rows = await _owned_rows(app, organization_id)
        assert rows["members"] == rows["apiKeys"] == rows["sessions"] == []
        assert len(rows["contacts"]) == 10
        with pytest.raises(ConvexError, match="^No active organization$"):
            await owner.query("contacts:listFromSession", {"paginationOpts": PAGE})
        check = {"keyHash": token_hash(key["apiKey"])}
        refused = await app.run_mutation("apiKeys:authenticate", check, internal=True)
        assert refused.value["status"] == "invalid"

        await _step(app, organization_id)  # 4 contacts
        assert len((await _owned_rows(app, organization_id))["contacts"]) == 6
        failing = deletion._delete_batch

        async def dies(*args: Any) -> int:
            await failing(*args)
            raise RuntimeError("the step died")

        monkeypatch.setattr(deletion, "_delete_batch", dies)
        with pytest.raises(RuntimeError, match="the step died"):
            await _step(app, organization_id)
        monkeypatch.setattr(deletion, "_delete_batch", failing)
        assert len((await _owned_rows(app, organization_id))["contacts"]) == 6  # rolled back
        resume = "organizationDeletion:resumeStalled"
        assert (await app.run_mutation(resume, {"idleMs": 60_000}, internal=True)).value == 0
        assert (await app.run_mutation(resume, {"idleMs": 0}, internal=True)).value == 1
        await _steps_to_the_end(app, organization_id)


async def test_rows_written_meanwhile_are_deleted_by_another_pass(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row that lands in a table the walk has passed (work that was already running, here
    an invitation accepted just then) makes the walk go round again; the organization goes
    only after a pass finds nothing."""
    monkeypatch.setattr(deletion, "ROWS_PER_STEP", 1)
    async with no_scheduler(tmp_path, database_url) as app:
        owner, organization_id = await _removed(app, 3)
        await _step(app, organization_id)  # a contact: the walk is past `members`

        async def late_member(ctx: Any) -> None:
            member = {"organizationId": organization_id, "userId": owner.user_id,
                      "role": "editor", "createdAt": 1.0}  # fmt: skip
            await ctx.db.insert("members", member)

        await in_mutation(app, late_member)
        await _steps_to_the_end(app, organization_id)


async def test_the_scheduler_runs_it_to_the_end_after_a_restart(
    tmp_path: Path, database_url: str
) -> None:
    async with no_scheduler(tmp_path, database_url) as down:
        _, organization_id = await _removed(down, 3)
    async with open_test_app("owlat.app", tmp_path, database_url=database_url) as restarted:
        await _deleted(restarted, organization_id)
        assert not any((await _owned_rows(restarted, organization_id)).values())


async def test_a_scheduled_campaign_of_an_organization_being_deleted_does_not_start(
    tmp_path: Path, database_url: str
) -> None:
    async with no_scheduler(tmp_path, database_url) as app:
        owner = await signed_in(app, "owner@example.com")
        organization_id = await with_organization(owner, "acme")

        async def scheduled_campaign(ctx: Any) -> str:
            return str(
                await ctx.db.insert(
                    "campaigns",
                    {
                        "organizationId": organization_id,
                        "name": "Due",
                        "status": "scheduled",
                        "scheduledAt": 1.0,
                        "createdAt": 1.0,
                        "updatedAt": 1.0,
                    },
                )
            )

        campaign_id = await in_mutation(app, scheduled_campaign)
        await owner.mutation("organizations:remove", {"organizationId": organization_id})
        await app.run_mutation("campaignSends:startDue", {}, internal=True)

        async def status(ctx: Any) -> str:
            return str((await ctx.db.get(campaign_id))["status"])

        assert await in_query(app, status) == "scheduled"


# -- SES identities (moto_server) ------------------------------------------------------------


async def _identities(moto_server: MotoServer) -> list[str]:
    with moto_server.client("ses") as client:
        return list(client.list_identities()["Identities"])


async def test_its_ses_identities_are_deleted_and_a_failure_is_retried(
    owlat: Application,
    tmp_path: Path,
    dns: DnsServer,
    moto_server: MotoServer,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "owlat.domains")
    monkeypatch.setattr(ses_deletion, "RETRY_DELAYS_S", (0.5, 0.5, 0.5))
    configure(tmp_path, dns, ses_endpoint_url=moto_server.endpoint_url)
    owner = await signed_in(owlat, "owner@sesco.example")
    organization_id = await with_organization(owner, "sesco")
    await owner.mutation(
        "emailProviders:saveSes",
        {"region": "us-east-1", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "x"},
    )
    domain = f"gone{'pg' if database_url else 'lite'}.example.org"
    domain_id = await owner.mutation("domains:create", {"domain": domain, "providerKind": "ses"})

    async def registered() -> bool:
        found = await owner.query("domains:get", {"domainId": domain_id})
        return bool(found["status"] != "registering")

    async def retrying() -> bool:
        return "trying again" in caplog.text

    async def identity_gone() -> bool:
        return domain not in await _identities(moto_server)

    await _until(registered)
    assert domain in await _identities(moto_server)

    configure(tmp_path, dns, ses_endpoint_url=f"http://127.0.0.1:{free_port()}")  # SES down
    await owner.mutation("organizations:remove", {"organizationId": organization_id})
    await _deleted(owlat, organization_id)  # SES does not hold it up
    await _until(retrying)
    assert domain in await _identities(moto_server)
    configure(tmp_path, dns, ses_endpoint_url=moto_server.endpoint_url)  # SES back: a retry
    await _until(identity_gone)


# -- work under way when the organization goes ---------------------------------------------


async def _unfinished_jobs(app: Application) -> list[dict[str, Any]]:
    """Scheduled functions not yet run, or that failed."""

    async def read(ctx: Any) -> list[dict[str, Any]]:
        jobs = await ctx.db.system.query("_scheduled_functions").collect()
        return [dict(job) for job in jobs if job["state"]["kind"] not in ("success", "canceled")]

    return list(await in_query(app, read))


async def test_a_campaign_sending_when_its_organization_goes_ends_cleanly(
    owlat: Application, tmp_path: Path, dns: DnsServer
) -> None:
    """Its walk and delivery workers find the campaign gone and stop: none fails, nothing of
    the organization is written after, no recipient gets the message twice."""
    configure(tmp_path, dns)
    team = await owner_and_editor(owlat)
    owner, editor, organization_id = team
    sink = Sink()
    async with smtp_server(sink) as port:
        list_id, _ = await _smtp_list(owlat, team, port, dns, 600)
        campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
        await owner.mutation("campaigns:send", {"campaignId": campaign_id})
        await progress_until(owner, campaign_id, lambda progress: progress["sent"] > 0)
        await owner.mutation("organizations:remove", {"organizationId": organization_id})
        await _deleted(owlat, organization_id)

        async def settled() -> bool:
            return not await _unfinished_jobs(owlat)

        await _until(settled)
    assert not any((await _owned_rows(owlat, organization_id)).values())
    assert len(_once_each(sink)) < 600  # it stopped short
