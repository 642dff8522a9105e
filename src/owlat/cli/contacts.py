"""`owlat contacts import|export`: CSV in and out of a running server (admin key).

import: reads the file's header, maps its columns (`--map COLUMN=FIELD` wins; otherwise
email/first name/last name/language/timezone by name, a defined property by its key, the
rest skipped), uploads the file through a storage upload URL, starts the import
(`contactImports:startForOrganization`), then follows it through a subscription to
`contactImports:progress` on the sync socket: each state the server pushes moves a rich
progress bar on stderr, and the command ends when the import does.

export: pages through `contactImports:exportPage` and writes CSV (to `-o FILE` or stdout).
"""

from __future__ import annotations

import asyncio
import csv
import enum
import io
import sys
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from owlat.cli._shared import (
    AdminKeyOption,
    CliError,
    DataDirOption,
    ExitCode,
    UrlOption,
    epilog,
    refusals_reported,
    remote,
)

if TYPE_CHECKING:
    from owlat.cli._remote import Remote

FIELD_NAMES = {
    "email": "email",
    "emailaddress": "email",
    "firstname": "firstName",
    "lastname": "lastName",
    "language": "language",
    "timezone": "timezone",
}
EXPORT_PAGE = 1000
SHOWN_ERRORS = 10
_ACTIVE = ("queued", "running")

commands = typer.Typer()
contacts = typer.Typer(no_args_is_help=True)
commands.add_typer(
    contacts,
    name="contacts",
    help="Import or export an organization's contacts as CSV, through a running server.",
    epilog=epilog(
        ["owlat contacts import people.csv --org acme", "owlat contacts export --org acme"],
        {ExitCode.OK: "done", ExitCode.USAGE: "bad usage"},
    ),
)


class OnDuplicate(enum.StrEnum):
    skip = "skip"
    update = "update"


OrgOption = Annotated[str, typer.Option("--org", help="organization slug or id")]


def _organization(server: Remote, org: str) -> dict[str, Any]:
    found = server.call("contactImports:organizationOf", {"organization": org})
    if found is None:
        raise CliError(f"unknown organization {org!r} (give its slug or id)", ExitCode.USAGE)
    return dict(found)


# -- import ---------------------------------------------------------------------------------


@contacts.command(
    "import",
    epilog=epilog(
        [
            "owlat contacts import people.csv --org acme",
            "owlat contacts import people.csv --org acme --list LIST_ID --on-duplicate update",
            'owlat contacts import people.csv --org acme --map "E-Mail=email" '
            '--map "Plan=property:plan" --map "Notes=skip"',
        ],
        {
            ExitCode.OK: "every row imported (or skipped as a duplicate)",
            ExitCode.FAILED: "the import failed, or the server refused or is unreachable",
            ExitCode.USAGE: "bad usage or refused input: unreadable file, no header, over the "
            "size limit, unknown organization, a bad --map, no admin key",
            ExitCode.ROW_ERRORS: "the import finished, with row errors (listed on stderr)",
            ExitCode.INTERRUPTED: "Ctrl-C stopped following (the import keeps running)",
        },
        "If the connection drops, following resumes once the server is back (a restarted "
        "server resumes its imports).",
    ),
)
def import_(
    file: Annotated[Path, typer.Argument(help="CSV file (UTF-8, header row first)")],
    org: OrgOption,
    list_id: Annotated[
        str | None, typer.Option("--list", help="mailing list id to subscribe the contacts to")
    ] = None,
    on_duplicate: Annotated[
        OnDuplicate,
        typer.Option(help="existing contacts: keep them as they are, or update them"),
    ] = OnDuplicate.skip,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="COLUMN=FIELD",
            help="map a column to email, firstName, lastName, language, timezone, "
            "property:KEY or skip (repeatable)",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    admin_key: AdminKeyOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Import a CSV file into an organization, showing its progress until it ends.

    The summary goes to stdout, the progress bar and row errors to stderr.
    """
    import_id = None
    try:
        with refusals_reported(), remote(url, admin_key, data_dir) as server:
            import_id = _start_import(server, file, org, list_id, on_duplicate.value, map_ or [])
            state = asyncio.run(_follow(server, import_id, file.name))
    except KeyboardInterrupt:
        if import_id is not None:
            print(
                f"stopped following import {import_id}; it keeps running on the server",
                file=sys.stderr,
            )
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    raise typer.Exit(_report(import_id, state))


def _start_import(
    server: Remote, path: Path, org: str, list_id: str | None, on_duplicate: str, maps: list[str]
) -> str:
    """Upload the file and start its import; the import's id."""
    header = _header(path)
    organization = _organization(server, org)
    mapping = _mapping(header, maps, organization["propertyKeys"])
    upload = server.call(
        "contactImports:uploadUrlForOrganization",
        {"organizationId": organization["organizationId"]},
    )
    size = path.stat().st_size
    if size > upload["maxBytes"]:
        raise CliError(
            f"{path} is {size:,} bytes; the server takes import files of at most "
            f"{int(upload['maxBytes']):,} bytes (OWLAT_IMPORT_MAX_BYTES)",
            ExitCode.USAGE,
        )
    with path.open("rb") as file:
        storage_id = server.upload(upload["uploadUrl"], file, size)
    args: dict[str, Any] = {
        "organizationId": organization["organizationId"],
        "storageId": storage_id,
        "fileName": path.name,
        "mapping": mapping,
        "onDuplicate": on_duplicate,
    }
    if list_id:
        args["listId"] = list_id
    return str(server.call("contactImports:startForOrganization", args))


def _header(path: Path) -> list[str]:
    try:
        with path.open("rb") as file:
            first = file.readline(1 << 20)
            while first.count(b'"') % 2 and (more := file.readline(1 << 20)):
                first += more
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}", ExitCode.USAGE) from None
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text", ExitCode.USAGE) from None
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    if not any(cell.strip() for cell in header):
        raise CliError(f"{path} has no header row", ExitCode.USAGE)
    return [cell.strip() for cell in header]


def _mapping(header: list[str], maps: list[str], property_keys: list[str]) -> dict[str, str]:
    """The mapping by column name, then the `--map` overrides (checked against the header)."""
    mapping: dict[str, str] = {}
    for column in header:
        simple = "".join(ch for ch in column.lower() if ch.isalnum())
        if simple in FIELD_NAMES:
            mapping[column] = FIELD_NAMES[simple]
        elif column.lower() in property_keys:
            mapping[column] = f"property:{column.lower()}"
        else:
            mapping[column] = "skip"
    for item in maps:
        column, separator, target = item.partition("=")
        column, target = column.strip(), target.strip()
        if not separator or not column or not target:
            raise CliError(f"--map takes COLUMN=FIELD, got {item!r}", ExitCode.USAGE)
        if column not in header:
            raise CliError(
                f"--map {item!r}: the file has no column {column!r} "
                f"(its columns: {', '.join(header)})",
                ExitCode.USAGE,
            )
        mapping[column] = target
    targets = [t for t in mapping.values() if t != "skip"]
    for column, target in list(mapping.items()):  # a field mapped by --map wins
        if target != "skip" and targets.count(target) > 1 and not _mapped(column, maps):
            mapping[column] = "skip"
    return mapping


def _mapped(column: str, maps: list[str]) -> bool:
    return any(item.partition("=")[0].strip() == column for item in maps)


async def _follow(server: Remote, import_id: str, name: str) -> dict[str, Any]:
    """The import's final state, following the states the server pushes until it ends."""
    args = {"importId": import_id, "errorLimit": float(SHOWN_ERRORS)}
    with _ImportProgress(name) as progress:
        async for state in server.subscribe("contactImports:progress", args):
            if state is None:
                raise CliError(f"import {import_id} no longer exists")
            progress.show(state)
            if state["status"] not in _ACTIVE:
                return dict(state)
    raise CliError(f"the server stopped sending the progress of import {import_id}")


class _ImportProgress:
    """A rich progress bar on stderr: rows done of the file's rows (once counted), redrawn
    for every state pushed. On a terminal it moves in place; otherwise (a pipe, a log file)
    only its last state is written, once, when it stops."""

    def __init__(self, name: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True, highlight=False),
        )
        self.task = self.progress.add_task(name, total=None, rows="queued")

    def __enter__(self) -> _ImportProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def show(self, state: dict[str, Any]) -> None:
        done, total = int(state["rowsDone"]), state.get("totalRows")
        rows = f"{done:,}/{int(total):,} rows" if total else f"{state['status']} {done:,} rows"
        self.progress.update(
            self.task, total=total or None, completed=done, rows=rows, refresh=True
        )


def _report(import_id: str, state: dict[str, Any]) -> ExitCode:
    """Print the summary (stdout) and the row errors (stderr); the exit status."""
    print(
        f"{state['status']}: {int(state['rowsDone'])} rows, {int(state['imported'])} imported, "
        f"{int(state['updated'])} updated, {int(state['skipped'])} skipped, "
        f"{int(state['failed'])} failed (import {import_id})"
    )
    for error in state["errors"]:
        column = f", column {error['column']}" if error.get("column") else ""
        print(f"  row {int(error['row'])}{column}: {error['reason']}", file=sys.stderr)
    if state["failed"] > len(state["errors"]):
        print(f"  ... {int(state['failed']) - len(state['errors'])} more", file=sys.stderr)
    if state["status"] != "completed":
        print(f"error: the import {state['status']}: {state.get('error', '')}", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.ROW_ERRORS if state["failed"] else ExitCode.OK


# -- export ---------------------------------------------------------------------------------


@contacts.command(
    "export",
    epilog=epilog(
        [
            "owlat contacts export --org acme -o contacts.csv",
            "owlat contacts export --org acme --url https://owlat.example.com > contacts.csv",
        ],
        {
            ExitCode.OK: "every contact written",
            ExitCode.FAILED: "the server refused or is unreachable",
            ExitCode.USAGE: "bad usage, an unknown organization, an unwritable file, no admin key",
        },
    ),
)
def export(
    org: OrgOption,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="file to write (default: stdout)", show_default=False),
    ] = None,
    url: UrlOption = None,
    admin_key: AdminKeyOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Write an organization's contacts as CSV (formula-like cells escaped), one row per
    contact; the count goes to stderr."""
    with refusals_reported(), remote(url, admin_key, data_dir) as server:
        organization = _organization(server, org)
        try:
            file = sys.stdout if output is None else output.open("w", newline="", encoding="utf-8")
        except OSError as error:
            raise CliError(f"cannot write {output}: {error.strerror}", ExitCode.USAGE) from None
        try:
            count = _write_pages(server, organization["organizationId"], csv.writer(file))
        finally:
            if output is not None:
                file.close()
    print(f"Exported {count} contacts" + (f" to {output}" if output else ""), file=sys.stderr)


def _write_pages(server: Remote, organization_id: str, writer: Any) -> int:
    """Write the header, then every page of contacts; how many were written."""
    count = 0
    cursor = None
    while True:
        page = server.call(
            "contactImports:exportPage",
            {"organizationId": organization_id, "cursor": cursor, "numItems": EXPORT_PAGE},
        )
        if cursor is None:
            writer.writerow(page["header"])
        writer.writerows(page["rows"])
        count += len(page["rows"])
        if page["isDone"]:
            return count
        cursor = page["continueCursor"]
