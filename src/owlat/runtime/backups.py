"""Scheduled backups: a snapshot ZIP (`snapshots.py`) at fixed times, the newest N kept.

    OWLAT_BACKUP_SCHEDULE=daily@03:30   every day at 03:30 UTC
    OWLAT_BACKUP_SCHEDULE=every 6h      every 6 hours (s, m, h, d), counted from the epoch

The times a schedule names are its *slots*. A server process with backups configured
(`Application(backups=...)`) sleeps until the next slot, then tries to **claim** it: one
write transaction that inserts `{slot, node, state: "running"}` into `_backups` unless a
row for that slot is already there. Transactions are serializable, so with several nodes
on one database (or one SQLite file) exactly one claim of a slot commits; the others see
the row and skip. The claimer exports a snapshot named by the slot's time
(`owlat-backup-20261207T033000Z.zip`, so names sort by time) to the target — a folder
(`<data dir>/backups`) or an S3-compatible bucket under a prefix — deletes all but the
newest `keep` backups there, and records the outcome ("done" or "failed" with the error)
in its row. A failure is logged and counted (`owlat_backups_total{outcome="failed"}`),
never raised: the server keeps serving. Slots missed while no server ran are skipped, and a
node that dies during a backup loses that slot (at most once; the next slot is taken again).
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import datetime as dt
import logging
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from owlat.runtime.database.query import Query
from owlat.runtime.snapshots import export_snapshot
from owlat.runtime.system_tables import BACKUPS, BACKUPS_BY_SLOT

if TYPE_CHECKING:
    from owlat.runtime.application import Application
    from owlat.runtime.database.engine import Engine
    from owlat.runtime.database.transaction import Transaction
    from owlat.runtime.storage.blobstores import BlobStore
    from owlat.runtime.storage.blobstores.s3 import S3BlobStore

logger = logging.getLogger("owlat.backups")

FOLDER = "backups"  # under the data folder
_NAME = re.compile(r"owlat-backup-\d{8}T\d{6}Z\.zip")
_EVERY = re.compile(r"every\s+(\d+)\s*([smhd])")
_DAILY = re.compile(r"daily@(\d{1,2}):(\d{2})")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DAY_MS = 86_400_000


@dataclasses.dataclass(frozen=True)
class BackupSchedule:
    """Slots every `period_ms`, offset by `offset_ms` from the epoch (UTC)."""

    period_ms: int
    offset_ms: int = 0

    @classmethod
    def parse(cls, text: str) -> BackupSchedule:
        """`daily@HH:MM` (UTC) or `every N<s|m|h|d>`; ValueError says what is accepted."""
        spec = text.strip().lower()
        if match := _DAILY.fullmatch(spec):
            hour, minute = int(match[1]), int(match[2])
            if hour < 24 and minute < 60:
                return cls(DAY_MS, (hour * 60 + minute) * 60_000)
        elif (match := _EVERY.fullmatch(spec)) and int(match[1]) > 0:
            return cls(int(match[1]) * _UNITS[match[2]] * 1000)
        raise ValueError(
            f"expected daily@HH:MM (UTC, e.g. daily@03:30) or every N followed by s, m, h "
            f"or d (e.g. every 6h), got {text!r}"
        )

    def next_after(self, ms: float) -> int:
        """The first slot strictly after `ms`."""
        steps = int((ms - self.offset_ms) // self.period_ms) + 1
        return self.offset_ms + steps * self.period_ms


def backup_name(slot_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(slot_ms / 1000, dt.UTC)
    return f"owlat-backup-{moment:%Y%m%dT%H%M%S}Z.zip"


class BackupTarget(abc.ABC):
    """Where backups are kept: `save` exports one under a name; list and delete them."""

    @abc.abstractmethod
    async def save(self, name: str, engine: Engine, blobs: BlobStore | None) -> None:
        """Export a snapshot of `engine` (files from `blobs`) as backup `name`."""

    @abc.abstractmethod
    async def names(self) -> list[str]:
        """Every backup's name (files of other names are not backups and are left alone)."""

    @abc.abstractmethod
    async def delete(self, name: str) -> None: ...

    @abc.abstractmethod
    def describe(self) -> str: ...

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections; the target is not used afterwards."""


class FolderTarget(BackupTarget):
    """Backups as files of a folder (created when needed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def save(self, name: str, engine: Engine, blobs: BlobStore | None) -> None:
        await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
        await export_snapshot(engine, blobs, self.folder / name)

    async def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return [path.name for path in self.folder.iterdir() if _NAME.fullmatch(path.name)]

    async def delete(self, name: str) -> None:
        await asyncio.to_thread((self.folder / name).unlink, missing_ok=True)

    def describe(self) -> str:
        return str(self.folder)


class S3Target(BackupTarget):
    """Backups as objects of a bucket (the store's prefix before each name); a snapshot
    is written to a temporary file, then uploaded."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store

    async def save(self, name: str, engine: Engine, blobs: BlobStore | None) -> None:
        with tempfile.TemporaryDirectory(prefix="owlat-backup-") as folder:
            path = Path(folder) / name
            await export_snapshot(engine, blobs, path)
            await self.store.put(name, _file_chunks(path))

    async def names(self) -> list[str]:
        return [key for key in await self.store.keys() if _NAME.fullmatch(key)]

    async def delete(self, name: str) -> None:
        await self.store.delete(name)

    def describe(self) -> str:
        return f"s3://{self.store.settings.bucket}/{self.store.settings.prefix}"

    async def close(self) -> None:
        await self.store.close()


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, 1024 * 1024):
            yield chunk


async def take_backup(
    target: BackupTarget, keep: int, engine: Engine, blobs: BlobStore | None, slot_ms: int
) -> str:
    """Write backup `slot_ms` to `target`, then delete all but the newest `keep` there."""
    name = backup_name(slot_ms)
    await target.save(name, engine, blobs)
    for old in sorted(await target.names(), reverse=True)[keep:]:
        await target.delete(old)
    return name


@dataclasses.dataclass(frozen=True)
class BackupPlan:
    """What a server backs up when: the schedule, how many to keep, where."""

    schedule: BackupSchedule
    keep: int
    target: BackupTarget


class BackupRunner:
    """The loop of one server process that claims and takes scheduled backups."""

    def __init__(self, app: Application, plan: BackupPlan) -> None:
        self._app = app
        self._plan = plan
        self._node = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="owlat backups")

    async def stop(self) -> None:
        """Stop the loop (a backup being written is cut short and leaves no file)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._plan.target.close()

    async def _loop(self) -> None:
        while True:
            slot = self._plan.schedule.next_after(time.time() * 1000)
            await asyncio.sleep(max(0.0, slot / 1000 - time.time()))
            await self.run_slot(slot)

    async def run_slot(self, slot: int) -> str | None:
        """Claim `slot` and take its backup; the backup's name, or None when another node
        claimed it or the backup failed (logged and counted)."""
        try:
            if not await self._app.run_system_write(lambda txn: self._claim(txn, slot)):
                return None
            storage = self._app.storage
            name = await take_backup(
                self._plan.target,
                self._plan.keep,
                self._app.engine,
                None if storage is None else storage.blobs,
                slot,
            )
        except Exception as error:
            logger.exception(
                "backup %s to %s failed", backup_name(slot), self._plan.target.describe()
            )
            self._count("failed")
            await self._record(slot, {"state": "failed", "error": f"{error}"[:2000]})
            return None
        logger.info("backup %s written to %s", name, self._plan.target.describe())
        self._count("done")
        await self._record(slot, {"state": "done", "file": name})
        return name

    def _count(self, outcome: str) -> None:
        if self._app.metrics is not None:
            self._app.metrics.backups.labels(outcome).inc()

    async def _claim(self, txn: Transaction, slot: int) -> bool:
        """Insert this node's claim of `slot` unless one is there; drop older rows."""
        table = txn.catalog.table(BACKUPS)
        rows = await (
            Query(txn, table).with_index(BACKUPS_BY_SLOT, lambda q: q.lte("slot", slot)).collect()
        )
        if any(row["slot"] == slot for row in rows):
            return False
        for row in rows:
            await txn.delete(table, row)
        fields = {"slot": float(slot), "node": self._node, "state": "running"}
        await txn.insert(table, table.definition.validate(BACKUPS, fields, None))
        return True

    async def _record(self, slot: int, outcome: dict[str, str]) -> None:
        async def write(txn: Transaction) -> None:
            table = txn.catalog.table(BACKUPS)
            row = await (
                Query(txn, table)
                .with_index(BACKUPS_BY_SLOT, lambda q: q.eq("slot", float(slot)))
                .first()
            )
            if row is not None and row["node"] == self._node:
                await txn.update(table, row, {**row, **outcome})

        try:
            await self._app.run_system_write(write)
        except Exception:
            logger.exception("could not record the outcome of backup %s", backup_name(slot))
