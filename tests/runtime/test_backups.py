"""Scheduled backups (owlat/runtime/backups.py): a server writes them on its schedule and
keeps the newest N, one node takes each slot, failures are counted, not raised, a backup
restores to the same data, into a folder or an S3-compatible bucket."""

from __future__ import annotations

import asyncio
import json
import time
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from owlat.runtime.app_package import load_app_package
from owlat.runtime.application import Application
from owlat.runtime.backups import (
    BackupPlan,
    BackupSchedule,
    BackupTarget,
    FolderTarget,
    S3Target,
    backup_name,
)
from owlat.runtime.database.engines import create_engine
from owlat.runtime.snapshots import import_snapshot
from owlat.runtime.storage import open_file_storage
from owlat.runtime.storage.blobstores.s3 import S3BlobStore
from owlat.runtime.system_tables import BACKUPS
from owlat.runtime.testing import TEST_PUBLIC_URL
from tests.runtime.test_snapshots import FIXTURE_APP, blobs_of, contents, deployment, populate
from tests.s3 import MotoServer

SLOT = 1_796_000_000_000  # 2026-11-30T00:53:20Z


@asynccontextmanager
async def node(data_dir: Path, url: str, plan: BackupPlan) -> AsyncIterator[Application]:
    """A started server-side Application taking the backups of `plan`."""
    application = Application(
        load_app_package(FIXTURE_APP),
        create_engine(data_dir, url),
        storage=open_file_storage(data_dir, public_url=TEST_PUBLIC_URL),
        backups=plan,
    )
    await application.start()
    try:
        yield application
    finally:
        await application.close()


def plan(target: BackupTarget, keep: int = 2, schedule: str = "daily@03:00") -> BackupPlan:
    return BackupPlan(BackupSchedule.parse(schedule), keep, target)


def backups_counted(app: Application, outcome: str) -> float:
    assert app.metrics is not None
    return app.metrics.backups.labels(outcome)._value.get()


async def backup_rows(app: Application) -> list[dict[str, object]]:
    async with app.engine.read() as reader:
        number = (await reader.list_tables())[BACKUPS]
        rows = await reader.documents_after(number, "", 100)
    return [json.loads(value) for _, value in rows]


def test_schedules_name_their_slots() -> None:
    daily = BackupSchedule.parse("daily@03:30")
    assert daily.next_after(SLOT) == 1_796_009_400_000  # 2026-11-30T03:30Z
    assert daily.next_after(1_796_009_400_000) == 1_796_009_400_000 + 86_400_000
    assert BackupSchedule.parse(" Every 15m ").next_after(SLOT) == SLOT + 400_000
    assert backup_name(SLOT) == "owlat-backup-20261130T005320Z.zip"
    for bad in ("daily@24:00", "daily@3", "every 0h", "every 5w", "hourly", "every h"):
        with pytest.raises(ValueError, match="expected daily@HH:MM .* or every N"):
            BackupSchedule.parse(bad)


async def test_a_server_writes_backups_on_its_schedule_and_keeps_n(
    tmp_path: Path, database_url: str
) -> None:
    folder = tmp_path / "data" / "backups"
    schedule = plan(FolderTarget(folder), 2, "every 1s")
    async with node(tmp_path / "data", database_url, schedule) as app:
        deadline = time.monotonic() + 30
        while backups_counted(app, "done") < 3:
            assert time.monotonic() < deadline, "no three backups within 30 s"
            await asyncio.sleep(0.1)
    names = sorted(path.name for path in folder.iterdir())
    assert len(names) == 2  # the oldest was deleted
    assert all(name.startswith("owlat-backup-") and name.endswith("Z.zip") for name in names)


async def test_one_node_takes_each_slot_and_older_backups_are_deleted(
    tmp_path: Path, database_url: str
) -> None:
    folder = tmp_path / "shared-backups"
    async with (
        node(tmp_path / "a", database_url, plan(FolderTarget(folder))) as a,
        node(tmp_path / "a", database_url, plan(FolderTarget(folder))) as b,
    ):
        assert a.backups is not None and b.backups is not None
        for step in range(4):
            slot = SLOT + step * 1000
            taken = await asyncio.gather(a.backups.run_slot(slot), b.backups.run_slot(slot))
            assert set(taken) == {backup_name(slot), None}
        assert backups_counted(a, "done") + backups_counted(b, "done") == 4
        (row,) = await backup_rows(a)  # older claims are dropped
        assert row["slot"] == SLOT + 3000 and row["state"] == "done"
    assert sorted(path.name for path in folder.iterdir()) == [
        backup_name(SLOT + 2000),
        backup_name(SLOT + 3000),
    ]


async def test_a_failed_backup_is_counted_and_the_server_keeps_serving(
    tmp_path: Path, database_url: str
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the backups folder should be")
    async with node(tmp_path / "data", database_url, plan(FolderTarget(blocked))) as app:
        assert app.backups is not None
        assert await app.backups.run_slot(SLOT) is None
        assert backups_counted(app, "failed") == 1
        (row,) = await backup_rows(app)
        assert row["state"] == "failed" and "not-a-folder" in str(row["error"])
        await app.run_mutation("messages:send", {"channel": "a", "body": "still here"})
    assert blocked.read_text().startswith("a file")


async def test_a_backup_restores_to_the_same_data(
    tmp_path: Path, database_url: str, target_url: str
) -> None:
    folder = tmp_path / "backups"
    async with node(tmp_path / "source", database_url, plan(FolderTarget(folder))) as source:
        await populate(source)
        before = await contents(source.engine, blobs_of(source))
        assert source.backups is not None
        name = await source.backups.run_slot(SLOT)
    assert name is not None
    async with deployment(tmp_path / "target", target_url) as target:
        await import_snapshot(target.package, target.engine, blobs_of(target), folder / name)
        assert await contents(target.engine, blobs_of(target)) == before


async def test_backups_go_to_an_s3_compatible_bucket(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    settings = moto_server.new_bucket(prefix="backups/")
    with moto_server.client() as client:
        client.put_object(Bucket=settings.bucket, Key="backups/notes.txt", Body=b"not a backup")
    async with node(tmp_path / "data", "", plan(S3Target(S3BlobStore(settings)))) as app:
        await populate(app)
        before = await contents(app.engine, blobs_of(app))
        assert app.backups is not None
        for step in range(3):
            await app.backups.run_slot(SLOT + step * 1000)
    with moto_server.client() as client:
        listed = client.list_objects_v2(Bucket=settings.bucket)["Contents"]
        keys = sorted(item["Key"] for item in listed)
        newest = f"backups/{backup_name(SLOT + 2000)}"
        assert keys == ["backups/notes.txt", f"backups/{backup_name(SLOT + 1000)}", newest]
        zip_path = tmp_path / "downloaded.zip"
        client.download_file(settings.bucket, newest, str(zip_path))
    assert zipfile.is_zipfile(zip_path)
    async with deployment(tmp_path / "target", "") as target:
        await import_snapshot(target.package, target.engine, blobs_of(target), zip_path)
        assert await contents(target.engine, blobs_of(target)) == before
