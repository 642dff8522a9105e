"""Moving a deployment from SQLite to PostgreSQL with `owlat export` and `owlat import`:
populated through the real server (sign-up over /api/auth, an organization, contacts, a list,
a stored file, a scheduled job), exported from the SQLite data folder by the CLI, imported
by the CLI into PostgreSQL, served there and read back over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx

from owlat.runtime import internal
from owlat.runtime.context import MutationCtx, QueryCtx
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import start_site, uploaded
from tests.e2e.owlat_app import sign_in, sign_up
from tests.postgres import PostgresForTests

ROOT = Path(__file__).resolve().parents[2]
PAGE = {"paginationOpts": {"numItems": 50, "cursor": None}}


def owlat(*args: str, database_url: str = "") -> subprocess.CompletedProcess[str]:
    # the checkout's own `src` first, as in processes.py
    paths = os.pathsep.join((str(ROOT / "src"), str(ROOT)))
    env = {**os.environ, "PYTHONPATH": paths, "OWLAT_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "owlat.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


async def test_a_sqlite_deployment_moves_to_postgres(
    tmp_path: Path, postgres: PostgresForTests
) -> None:
    source, target, snapshot = tmp_path / "source", tmp_path / "target", tmp_path / "s.zip"
    async with start_site(source) as site:
        account = await sign_up(site.url, site.site_url, "acme")
        contact_id = await account.call(
            "mutation", "contacts:createFromSession", {"email": "ada@example.com"}
        )
        list_id = await account.call("mutation", "mailingLists:create", {"name": "News"})
        await account.call(
            "mutation",
            "mailingLists:addContact",
            {"listId": list_id, "contactId": contact_id, "skipDoi": True},
        )

        async def organizations(ctx: QueryCtx) -> list[str]:
            return [row["_id"] for row in await ctx.db.query("organizations").collect()]

        (organization,) = await in_query(site.application, organizations)
        storage_id = await uploaded(site.application, organization, b"attachment bytes")

        async def schedule(ctx: MutationCtx) -> str:
            return await ctx.scheduler.run_after(3_600_000, internal.contacts.purge_deleted, {})

        job_id = await in_mutation(site.application, schedule)
        contacts_before = await account.call("query", "contacts:listFromSession", PAGE)
        lists_before = await account.call("query", "mailingLists:list", {})
        assert [c["email"] for c in contacts_before["page"]] == ["ada@example.com"]
        assert [row["name"] for row in lists_before] == ["News"]

    exported = owlat("export", str(snapshot), "--data-dir", str(source))
    assert exported.returncode == 0, exported.stderr
    assert "Exported" in exported.stdout and "1 files" in exported.stdout
    with zipfile.ZipFile(snapshot) as archive:
        assert {"users/documents.jsonl", "contacts/documents.jsonl"} <= set(archive.namelist())

    with postgres.schema() as url:
        imported = owlat("import", str(snapshot), "--data-dir", str(target), database_url=url)
        assert imported.returncode == 0, imported.stderr
        again = owlat("import", str(snapshot), "--data-dir", str(target), database_url=url)
        assert again.returncode == 2 and "pass --replace" in again.stderr

        async with start_site(target, database_url=url) as moved:
            account = await sign_in(moved.url, moved.site_url, "acme")  # the same password
            assert await account.call("query", "contacts:listFromSession", PAGE) == contacts_before
            assert await account.call("query", "mailingLists:list", {}) == lists_before

            async def stored(ctx: QueryCtx) -> Any:
                job = await ctx.db.system.get(job_id)
                return (await ctx.db.system.get(storage_id))["key"], job["state"]["kind"]

            key, job_state = await in_query(moved.application, stored)
            assert job_state == "pending"
            async with httpx.AsyncClient(base_url=moved.url) as http:
                file = await http.get(f"/api/storage/{key}")
            assert file.status_code == 200 and file.content == b"attachment bytes"
