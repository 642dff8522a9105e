"""`owlat`: the command line (one entry point, one sub-command per job; typer on click).

owlat dev | serve     run the client API (HTTP function API, sync WebSocket, file storage)
                      and the HTTP actions (site port) in one process        (server.py)
owlat run PATH ARGS   run one function, on the local database or (--url) a server
                                                                             (functions.py)
owlat admin-key       print the data folder's admin key                      (admin.py)
owlat admin create    create a platform admin of owlat.app (email, name, password)
owlat contacts import|export   CSV in and out of a running server           (contacts.py)
owlat export | import a snapshot of the deployment (documents and files) as a ZIP in
                      Convex's layout, on the database itself              (snapshots.py)
owlat codegen         TypeScript types of the app's functions and tables for web
                      clients (api.ts, dataModel.ts)                         (codegen.py)

Every command's `--help` shows examples and its exit statuses (`ExitCode`: 0 ok, 1 failed,
2 bad usage or refused input, 3 an import finished with row errors, 130 interrupted).
`owlat --install-completion` installs shell completion.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

from owlat.cli import admin, codegen, contacts, functions, server, snapshots
from owlat.cli._shared import ExitCode

__all__ = ["ExitCode", "app", "main"]

app = typer.Typer(
    name="owlat",
    help="Owlat: email marketing on a reactive Python backend. `owlat COMMAND --help` shows "
    "a command's examples and exit statuses.",
    epilog='**Examples**\n\n```\nowlat dev\nowlat run messages:list \'{"channel": "general"}\'\n'
    "owlat contacts import people.csv --org acme\n```\n\n**Exit status**: **0** ok; **1** "
    "failed; **2** bad usage or refused input; **3** an import finished with row errors; "
    "**130** interrupted.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
    # Plain tracebacks: rich ones would print local variables (admin keys, passwords).
    pretty_exceptions_enable=False,
)
for _module in (server, functions, admin, contacts, codegen, snapshots):
    app.add_typer(_module.commands)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `owlat` with `argv` (default: the process's arguments); the exit status."""
    try:
        app(args=None if argv is None else list(argv), prog_name="owlat")
    except SystemExit as exit:
        if exit.code is None or isinstance(exit.code, int):
            return exit.code or ExitCode.OK
        raise  # a message (e.g. a bad OWLAT_* setting): Python prints it, status 1
    return ExitCode.OK
