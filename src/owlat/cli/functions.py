"""`owlat run PATH [ARGS]`: one function, on the local database or (`--url`) a running
server, with admin rights; its result printed as JSON, its log lines on stderr."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from owlat.cli._shared import (
    AdminKeyOption,
    AppOption,
    DataDirOption,
    ExitCode,
    admin_key,
    engine,
    epilog,
    fail,
    file_storage,
    own_issuers,
    refusals_reported,
    settings,
    url,
)
from owlat.config import Settings

commands = typer.Typer()


@commands.command(
    epilog=epilog(
        [
            'owlat run messages:send \'{"channel": "general", "body": "hi"}\'',
            'owlat run messages:list \'{"channel": "general"}\' --url http://127.0.0.1:3210',
            'owlat run contactImports:organizationOf \'{"organization": "acme"}\'  # internal',
        ],
        {
            ExitCode.OK: "the function returned (its result on stdout)",
            ExitCode.FAILED: "the function failed, or the server refused or is unreachable",
            ExitCode.USAGE: "bad usage: arguments that are not a JSON object, no admin key",
        },
    )
)
def run(
    path: Annotated[str, typer.Argument(help="function path, e.g. contacts:list")],
    args: Annotated[str, typer.Argument(help="arguments as a JSON object")] = "{}",
    app: AppOption = None,
    data_dir: DataDirOption = None,
    url: Annotated[
        str | None,
        typer.Option(help="call the server at this URL instead of opening the database"),
    ] = None,
    admin_key: AdminKeyOption = None,
) -> None:
    """Run a function and print its result as JSON.

    It runs against the local database, or a running server with --url, with admin rights:
    internal functions are allowed. The function's log lines go to stderr.
    """
    current = settings()
    data_dir = data_dir or current.data_dir
    arguments = _parse_args(args)
    if url:
        status = _run_remote(url, path, arguments, admin_key, current, data_dir)
    else:
        status = asyncio.run(_run_local(app or current.app, path, arguments, current, data_dir))
    raise typer.Exit(status)


def _parse_args(text: str) -> Any:
    from owlat.runtime.errors import OwlatError
    from owlat.runtime.values import json_to_convex, loads

    try:
        args: Any = json_to_convex(loads(text))
    except OwlatError as error:
        fail(f"arguments are not valid JSON: {error.message}", ExitCode.USAGE)
    if not isinstance(args, dict):
        fail('arguments must be a JSON object, e.g. \'{"email": "a@b.io"}\'', ExitCode.USAGE)
    return args


def _print_log_lines(lines: Sequence[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


async def _run_local(
    app_name: str, path: str, args: Any, settings: Settings, data_dir: Path
) -> ExitCode:
    from owlat.runtime.app_package import load_app_package
    from owlat.runtime.application import Application
    from owlat.runtime.errors import ConvexError, OwlatError
    from owlat.runtime.values import convex_to_json, dumps

    own_issuers(app_name, settings, data_dir, url(settings.host, settings.site_port))
    app = Application(
        load_app_package(app_name),
        engine(settings, data_dir),
        storage=file_storage(settings, data_dir, url(settings.host, settings.port)),
    )
    await app.start()
    try:
        result = await app.execute(None, path, args, internal=True)
    finally:
        await app.close()
    error = result.error
    if isinstance(error, OwlatError):
        _print_log_lines(result.log_lines)
        print(f"error: {error.message}", file=sys.stderr)
        if isinstance(error, ConvexError):
            print(dumps({"errorData": convex_to_json(error.data)}).decode(), file=sys.stderr)
        return ExitCode.FAILED
    if error is not None:
        raise error
    _print_log_lines(result.log_lines)
    print(dumps(convex_to_json(result.value)).decode())
    return ExitCode.OK


def _run_remote(
    server_url: str, path: str, args: Any, key: str | None, settings: Settings, data_dir: Path
) -> ExitCode:
    """The same call through a server's `POST /api/function`."""
    from owlat.cli._remote import Remote
    from owlat.runtime.values import dumps

    with refusals_reported(), Remote(server_url, admin_key(key, settings, data_dir)) as remote:
        reply = remote.function(path, args)
    _print_log_lines(reply.get("logLines", []))
    if reply.get("status") == "success":
        print(dumps(reply["value"]).decode())
        return ExitCode.OK
    print(f"error: {reply.get('errorMessage')}", file=sys.stderr)
    if "errorData" in reply:
        print(dumps({"errorData": reply["errorData"]}).decode(), file=sys.stderr)
    return ExitCode.FAILED
