"""`owlat`: the command line (one entry point, one sub-command per job)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from owlat.config import Settings


def _add_app_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument(
        "--app",
        default=settings.app,
        help="app package to serve (env OWLAT_APP; default %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=settings.data_dir,
        help="data folder (env OWLAT_DATA_DIR; default %(default)s)",
    )


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="owlat", description="Owlat: email marketing on a reactive Python backend"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="run a function against the local database "
        "(admin rights: internal functions allowed) and print its "
        "result as JSON",
    )
    run.add_argument("path", help="function path, e.g. contacts:list or mailingLists:create")
    run.add_argument("args", nargs="?", default="{}", help="arguments as a JSON object")
    _add_app_options(run, settings)
    return parser


async def _run_function(options: argparse.Namespace, settings: Settings) -> int:
    from owlat.runtime.app_package import load_app_package
    from owlat.runtime.application import Application
    from owlat.runtime.engines import create_engine
    from owlat.runtime.errors import ConvexError, OwlatError
    from owlat.runtime.values import convex_to_json, dumps, json_to_convex, loads

    try:
        args: Any = json_to_convex(loads(options.args))
    except OwlatError as error:
        print(f"error: arguments are not valid JSON: {error.message}", file=sys.stderr)
        return 2
    if not isinstance(args, dict):
        print(
            'error: arguments must be a JSON object, e.g. \'{"email": "a@b.io"}\'', file=sys.stderr
        )
        return 2
    app = Application(
        load_app_package(options.app),
        create_engine(
            options.data_dir, settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        ),
    )
    await app.start()
    try:
        result = await app.run(None, options.path, args, internal=True)
    except ConvexError as error:
        print(f"error: {error.message}", file=sys.stderr)
        print(dumps({"errorData": convex_to_json(error.data)}).decode(), file=sys.stderr)
        return 1
    except OwlatError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    finally:
        await app.close()
    print(dumps(convex_to_json(result.value)).decode())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings.from_env()
    options = _parser(settings).parse_args(argv)
    if options.command == "run":
        return asyncio.run(_run_function(options, settings))
    raise AssertionError(options.command)


if __name__ == "__main__":
    sys.exit(main())
