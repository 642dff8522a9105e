"""`owlat export` and `owlat import`: a deployment's snapshot as a ZIP in Convex's layout.

Both work on the database itself (the data folder's SQLite file, or OWLAT_DATABASE_URL) and
the configured file storage, not through a server: an export reads one snapshot while
servers keep serving; an import should run while no server serves the database (servers
cache query results), then start them. See owlat/runtime/snapshots.py for what a snapshot
holds.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from owlat.cli._shared import (
    AppOption,
    CliError,
    DataDirOption,
    ExitCode,
    backup_target,
    engine,
    epilog,
    file_storage,
    refusals_reported,
    settings,
    url,
)

if TYPE_CHECKING:
    from owlat.runtime.snapshots import SnapshotSummary

_T = TypeVar("_T")
commands = typer.Typer()
backups = typer.Typer(no_args_is_help=True)
commands.add_typer(
    backups,
    name="backup",
    help="Backups as `owlat serve` takes them on OWLAT_BACKUP_SCHEDULE, on demand.",
    epilog=epilog(["owlat backup now"], {ExitCode.OK: "done", ExitCode.USAGE: "bad usage"}),
)

_EXITS = {
    ExitCode.OK: "done",
    ExitCode.FAILED: "the database or the file storage failed",
    ExitCode.USAGE: "bad usage or refused input (the message says why)",
    ExitCode.INTERRUPTED: "interrupted (nothing written)",
}


@commands.command(
    "export",
    epilog=epilog(
        [
            "owlat export backup.zip",
            "owlat export --tables contacts,mailingLists contacts.zip",
            "OWLAT_DATABASE_URL=postgresql://... owlat export backup.zip",
        ],
        _EXITS,
        "The snapshot is the deployment at one commit timestamp, read while servers keep "
        "serving: the app's tables, _storage with the files, _scheduled_functions and "
        "_cron_jobs, in the layout of `npx convex export`.",
    ),
)
def export(
    file: Annotated[Path, typer.Argument(help="the ZIP file to write", show_default=False)],
    tables: Annotated[
        str | None,
        typer.Option(help="comma-separated tables to export (default: all)", show_default=False),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Write a snapshot of the deployment (documents and files) to a ZIP file."""
    from owlat.runtime.snapshots import export_snapshot

    current = settings()
    folder = data_dir or current.data_dir
    names = [name.strip() for name in tables.split(",") if name.strip()] if tables else None
    with refusals_reported():
        _check_database(current.database_url, folder)

        async def run() -> SnapshotSummary:
            database = engine(current, folder, memory_map=False)  # RSS bounded by pages
            storage = file_storage(current, folder, url(current.host, current.port))
            await database.open()
            try:
                with _Bar("exporting") as bar:
                    return await export_snapshot(
                        database, storage.blobs, file, tables=names, progress=bar.show
                    )
            finally:
                await database.close()
                await storage.close()

        summary = _run(run)
    documents = sum(summary.documents.values())
    note = f", {summary.missing_files} deleted meanwhile left out" if summary.missing_files else ""
    print(
        f"Exported {documents} documents of {len(summary.documents)} tables and "
        f"{summary.files} files ({summary.file_bytes} bytes{note}) at timestamp {summary.ts} "
        f"to {file}"
    )


@commands.command(
    "import",
    epilog=epilog(
        [
            "owlat import backup.zip",
            "owlat import backup.zip --replace",
            "OWLAT_DATABASE_URL=postgresql://... owlat import backup.zip   # SQLite → PostgreSQL",
        ],
        _EXITS,
        "Ids, _creationTime and storage ids are kept. All or nothing: a refused or failed "
        "import leaves the database as it was. Run it while no server serves the database.",
    ),
)
def import_(
    file: Annotated[
        Path, typer.Argument(help="a ZIP written by `owlat export`", show_default=False)
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="replace the documents of the snapshot's tables")
    ] = False,
    app: AppOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Load a snapshot into the deployment (empty, or `--replace`)."""
    from owlat.runtime.app_package import load_app_package
    from owlat.runtime.snapshots import import_snapshot

    current = settings()
    folder = data_dir or current.data_dir

    async def run() -> SnapshotSummary:
        package = load_app_package(app or current.app)
        database = engine(current, folder)
        storage = file_storage(current, folder, url(current.host, current.port))
        try:
            with _Bar("importing") as bar:
                return await import_snapshot(
                    package, database, storage.blobs, file, replace=replace, progress=bar.show
                )
        finally:
            await database.close()
            await storage.close()

    with refusals_reported():
        summary = _run(run)
    print(
        f"Imported {sum(summary.documents.values())} documents of {len(summary.documents)} "
        f"tables and {summary.files} files ({summary.file_bytes} bytes) from {file}"
    )


@backups.command(
    "now",
    epilog=epilog(
        [
            "owlat backup now",
            "OWLAT_BACKUP_TO=s3 OWLAT_STORAGE_BUCKET=owlat owlat backup now",
        ],
        _EXITS,
        "Writes owlat-backup-<UTC time>.zip where the scheduled backups go (OWLAT_BACKUP_TO: "
        "<data dir>/backups, or the storage bucket under OWLAT_BACKUP_PREFIX), then keeps "
        "the newest OWLAT_BACKUP_KEEP there. Read while servers keep serving.",
    ),
)
def backup_now(data_dir: DataDirOption = None) -> None:
    """Take a backup now (a snapshot ZIP named by its time), keeping the newest N."""
    import time

    from owlat.runtime.backups import take_backup

    current = settings()
    folder = data_dir or current.data_dir
    with refusals_reported():
        _check_database(current.database_url, folder)

        target = backup_target(current, folder)

        async def run() -> str:
            database = engine(current, folder, memory_map=False)
            storage = file_storage(current, folder, url(current.host, current.port))
            await database.open()
            try:
                now = int(time.time()) * 1000
                return await take_backup(target, current.backup_keep, database, storage.blobs, now)
            finally:
                await database.close()
                await storage.close()
                await target.close()

        name = _run(run)
    print(f"Backup {name} written to {target.describe()}")


def _check_database(database_url: str, data_dir: Path) -> None:
    """Refuse to export a data folder without a database (opening would create one)."""
    from owlat.runtime.database.engines import SQLITE_FILE

    if not database_url and not (data_dir / SQLITE_FILE).exists():
        raise CliError(
            f"no database in {data_dir} (pass --data-dir, or set OWLAT_DATABASE_URL)",
            ExitCode.USAGE,
        )


def _run(run: Callable[[], Coroutine[None, None, _T]]) -> _T:
    """Run the command; a refusal or an engine failure ends it as `fail` does."""
    from owlat.runtime.errors import OwlatError, UserError

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        raise CliError("interrupted", ExitCode.INTERRUPTED) from None
    except OwlatError as error:
        status = ExitCode.USAGE if isinstance(error, UserError) else ExitCode.FAILED
        raise CliError(error.message, status) from None


class _Bar:
    """A rich progress bar on stderr: documents (and files) done of the total, when known,
    with the table being written."""

    def __init__(self, verb: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.verb = verb
        self.progress = Progress(
            TextColumn("{task.description:<32}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
        )
        self.task = self.progress.add_task(verb, total=None)

    def show(self, step: str, done: int, total: int) -> None:
        self.progress.update(
            self.task, description=f"{self.verb} {step}", completed=done, total=total or None
        )

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()
