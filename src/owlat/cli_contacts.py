"""`owlat contacts import|export`: CSV in and out of a running server (admin key).

import: reads the file's header, maps its columns (`--map COLUMN=FIELD` wins; otherwise
email/first name/last name/language/timezone by name, a defined property by its key, the
rest skipped), uploads the file through a storage upload URL, starts the import
(`contactImports:startForOrganization`) and shows its progress on stderr until it ends.
Exit status: 0 all rows imported, 3 finished with row errors, 1 the import failed or the
server refused, 2 bad arguments.

export: pages through `contactImports:exportPage` and writes CSV (to `-o FILE` or stdout).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from owlat.config import Settings

FIELD_NAMES = {
    "email": "email",
    "emailaddress": "email",
    "firstname": "firstName",
    "lastname": "lastName",
    "language": "language",
    "timezone": "timezone",
}
EXPORT_PAGE = 1000
POLL_SECONDS = 0.2
BAR_WIDTH = 30
SHOWN_ERRORS = 10


class CliError(Exception):
    """A refusal to print as `error: ...` with an exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def add_parser(commands: Any, settings: Settings, data_dir_option: Any) -> None:
    """The `contacts` command group."""
    contacts = commands.add_parser("contacts", help="import or export contacts as CSV")
    group = contacts.add_subparsers(dest="contacts_command", required=True)
    imports = group.add_parser("import", help="import a CSV file into an organization")
    imports.add_argument("file", type=Path, help="CSV file (UTF-8, header row first)")
    exports = group.add_parser("export", help="write an organization's contacts as CSV")
    exports.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    for parser in (imports, exports):
        parser.add_argument("--org", required=True, help="organization slug or id")
        parser.add_argument(
            "--url",
            help="server URL (default: the local server, http://HOST:PORT from the settings)",
        )
        parser.add_argument(
            "--admin-key",
            help="admin key (default: env OWLAT_ADMIN_KEY, then the data folder's key)",
        )
        data_dir_option(parser, settings)
    imports.add_argument("--list", dest="list_id", help="mailing list id to subscribe to")
    imports.add_argument(
        "--on-duplicate",
        choices=("skip", "update"),
        default="skip",
        help="existing contacts: keep them as they are (default) or update them",
    )
    imports.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COLUMN=FIELD",
        help="map a column to email, firstName, lastName, language, timezone, "
        "property:<key> or skip (repeatable)",
    )


def run(options: argparse.Namespace, settings: Settings, default_url: str) -> int:
    try:
        server = _Server(options, settings, default_url)
        if options.contacts_command == "import":
            return _import(server, options)
        return _export(server, options)
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.status


class _Server:
    """Function calls to a running server with the admin key (`POST /api/function`)."""

    def __init__(self, options: argparse.Namespace, settings: Settings, default_url: str) -> None:
        from owlat.runtime.auth import read_admin_key

        self.url = (options.url or default_url).rstrip("/")
        key = options.admin_key or settings.admin_key or read_admin_key(options.data_dir)
        if not key:
            raise CliError(
                f"no admin key: pass --admin-key, set OWLAT_ADMIN_KEY, or run where "
                f"{options.data_dir}/admin_key exists",
                2,
            )
        self.key = key

    def call(self, path: str, args: dict[str, Any]) -> Any:
        from owlat.runtime.values import convex_to_json, dumps, json_to_convex, loads

        body = {"path": path, "args": convex_to_json(args), "format": "convex_encoded_json"}
        reply = self._send(
            urllib.request.Request(
                self.url + "/api/function",
                data=dumps(body),
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Convex {self.key}",
                    "Convex-Client": "owlat-cli-0.1.0",
                },
            )
        )
        answer: Any = loads(reply)
        if answer.get("status") != "success":
            data = answer.get("errorData")  # a refusal's own sentence (ConvexError)
            raise CliError(data if isinstance(data, str) else str(answer.get("errorMessage")))
        return json_to_convex(answer["value"])

    def upload(self, url: str, file: IO[bytes], size: int) -> str:
        from owlat.runtime.values import loads

        request = urllib.request.Request(
            url,
            data=file,
            method="POST",
            headers={"Content-Type": "text/csv", "Content-Length": str(size)},
        )
        return str(loads(self._send(request))["storageId"])

    def _send(self, request: urllib.request.Request) -> bytes:
        try:
            with urllib.request.urlopen(request) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            with error:
                text = error.read().decode(errors="replace")
            raise CliError(f"{error.code} {text[:500]}") from None
        except urllib.error.URLError as error:
            raise CliError(f"cannot reach {self.url}: {error.reason}") from None


def _organization(server: _Server, org: str) -> dict[str, Any]:
    found = server.call("contactImports:organizationOf", {"organization": org})
    if found is None:
        raise CliError(f"unknown organization {org!r} (give its slug or id)", 2)
    return dict(found)


# -- import ---------------------------------------------------------------------------------


def _header(path: Path) -> list[str]:
    try:
        with path.open("rb") as file:
            first = file.readline(1 << 20)
            while first.count(b'"') % 2 and (more := file.readline(1 << 20)):
                first += more
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}", 2) from None
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text", 2) from None
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    if not any(cell.strip() for cell in header):
        raise CliError(f"{path} has no header row", 2)
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
            raise CliError(f"--map takes COLUMN=FIELD, got {item!r}", 2)
        if column not in header:
            raise CliError(
                f"--map {item!r}: the file has no column {column!r} "
                f"(its columns: {', '.join(header)})",
                2,
            )
        mapping[column] = target
    targets = [t for t in mapping.values() if t != "skip"]
    for column, target in list(mapping.items()):  # a field mapped by --map wins
        if target != "skip" and targets.count(target) > 1 and not _mapped(column, maps):
            mapping[column] = "skip"
    return mapping


def _mapped(column: str, maps: list[str]) -> bool:
    return any(item.partition("=")[0].strip() == column for item in maps)


def _import(server: _Server, options: argparse.Namespace) -> int:
    path: Path = options.file
    header = _header(path)
    organization = _organization(server, options.org)
    mapping = _mapping(header, options.map, organization["propertyKeys"])
    upload = server.call(
        "contactImports:uploadUrlForOrganization",
        {"organizationId": organization["organizationId"]},
    )
    size = path.stat().st_size
    if size > upload["maxBytes"]:
        raise CliError(
            f"{path} is {size:,} bytes; the server takes import files of at most "
            f"{int(upload['maxBytes']):,} bytes (OWLAT_IMPORT_MAX_BYTES)",
            2,
        )
    with path.open("rb") as file:
        storage_id = server.upload(upload["uploadUrl"], file, size)
    args: dict[str, Any] = {
        "organizationId": organization["organizationId"],
        "storageId": storage_id,
        "fileName": path.name,
        "mapping": mapping,
        "onDuplicate": options.on_duplicate,
    }
    if options.list_id:
        args["listId"] = options.list_id
    import_id = server.call("contactImports:startForOrganization", args)
    state = _follow(server, import_id)
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
        return 1
    return 3 if state["failed"] else 0


def _follow(server: _Server, import_id: str) -> dict[str, Any]:
    """Poll the import, drawing a progress bar on stderr, until it ends."""
    while True:
        state = server.call(
            "contactImports:progress", {"importId": import_id, "errorLimit": SHOWN_ERRORS}
        )
        _bar(state)
        if state["status"] not in ("queued", "running"):
            print(file=sys.stderr)
            return dict(state)
        time.sleep(POLL_SECONDS)


def _bar(state: dict[str, Any]) -> None:
    done, total = int(state["rowsDone"]), state.get("totalRows")
    if total:
        fraction = min(1.0, done / total)
        filled = round(BAR_WIDTH * fraction)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        text = f"[{bar}] {fraction:4.0%} {done:,}/{int(total):,} rows"
    else:
        text = f"[{'.' * BAR_WIDTH}] {state['status']} {done:,} rows"
    sys.stderr.write(f"\r{text}")
    sys.stderr.flush()


# -- export ---------------------------------------------------------------------------------


def _export(server: _Server, options: argparse.Namespace) -> int:
    organization = _organization(server, options.org)
    output: Path | None = options.output
    try:
        file = sys.stdout if output is None else output.open("w", newline="", encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot write {output}: {error.strerror}", 2) from None
    count = 0
    try:
        writer = csv.writer(file)
        cursor = None
        while True:
            page = server.call(
                "contactImports:exportPage",
                {
                    "organizationId": organization["organizationId"],
                    "cursor": cursor,
                    "numItems": EXPORT_PAGE,
                },
            )
            if cursor is None:
                writer.writerow(page["header"])
            writer.writerows(page["rows"])
            count += len(page["rows"])
            if page["isDone"]:
                break
            cursor = page["continueCursor"]
    finally:
        if output is not None:
            file.close()
    print(f"Exported {count} contacts" + (f" to {output}" if output else ""), file=sys.stderr)
    return 0
