"""`owlat`: the command line (one entry point, one sub-command per job).

owlat dev | serve     run the client API (HTTP function API, sync WebSocket, file storage)
                      and the HTTP actions (site port) in one process
owlat run PATH ARGS   run one function, on the local database or (--url) a server
owlat admin-key       print the data folder's admin key
owlat admin create    create a platform admin of owlat.app (email, name, password)
owlat contacts import|export   CSV in and out of a running server (cli_contacts.py)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from owlat.config import Settings

if TYPE_CHECKING:
    import socket

    import uvicorn

    from owlat.runtime.auth import TrustedIssuer
    from owlat.runtime.database.engine import Engine
    from owlat.runtime.storage import FileStorage


def _add_app_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    parser.add_argument(
        "--app",
        default=settings.app,
        help="app package to serve (env OWLAT_APP; default %(default)s)",
    )
    _add_data_dir_option(parser, settings)


def _add_data_dir_option(parser: argparse.ArgumentParser, settings: Settings) -> None:
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

    for name, purpose in (
        ("dev", "run Owlat for development (verbose logs)"),
        ("serve", "run Owlat in production (warnings and errors only)"),
    ):
        server = commands.add_parser(name, help=purpose)
        _add_app_options(server, settings)
        server.add_argument(
            "--host", default=settings.host, help="address to listen on (env OWLAT_HOST)"
        )
        server.add_argument(
            "--port",
            type=int,
            default=settings.port,
            help="client API port (env OWLAT_PORT; default %(default)s; 0 picks a free one)",
        )
        server.add_argument(
            "--site-port",
            type=int,
            default=settings.site_port,
            help="HTTP actions port (env OWLAT_SITE_PORT; default %(default)s; 0 picks a free one)",
        )

    run = commands.add_parser(
        "run",
        help="run a function against the local database, or a running server with --url "
        "(admin rights: internal functions allowed), and print its result as JSON",
    )
    run.add_argument("path", help="function path, e.g. contacts:list or mailingLists:create")
    run.add_argument("args", nargs="?", default="{}", help="arguments as a JSON object")
    _add_app_options(run, settings)
    run.add_argument("--url", help="call the server at this URL instead of opening the database")
    run.add_argument(
        "--admin-key",
        help="admin key for --url (default: env OWLAT_ADMIN_KEY, then the data folder's key)",
    )

    admin_key = commands.add_parser(
        "admin-key", help="print the admin key of the data folder (created if missing)"
    )
    _add_data_dir_option(admin_key, settings)

    admin = commands.add_parser("admin", help="manage Owlat's platform admins")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    create_admin = admin_commands.add_parser(
        "create", help="create a platform admin (or promote an existing user)"
    )
    create_admin.add_argument("--email", required=True)
    create_admin.add_argument("--name", required=True)
    create_admin.add_argument(
        "--password", help="10–128 characters (default: prompted for, or OWLAT_ADMIN_PASSWORD)"
    )
    _add_app_options(create_admin, settings)

    from owlat import cli_contacts

    cli_contacts.add_parser(commands, settings, _add_data_dir_option)
    return parser


# -- owlat run -------------------------------------------------------------------------------


def _parse_args(text: str) -> Any:
    from owlat.runtime.errors import OwlatError
    from owlat.runtime.values import json_to_convex, loads

    try:
        args: Any = json_to_convex(loads(text))
    except OwlatError as error:
        print(f"error: arguments are not valid JSON: {error.message}", file=sys.stderr)
        raise SystemExit(2) from None
    if not isinstance(args, dict):
        print(
            'error: arguments must be a JSON object, e.g. \'{"email": "a@b.io"}\'', file=sys.stderr
        )
        raise SystemExit(2)
    return args


def _print_log_lines(lines: Sequence[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


async def _run_function(options: argparse.Namespace, settings: Settings) -> int:
    from owlat.runtime.app_package import load_app_package
    from owlat.runtime.application import Application
    from owlat.runtime.errors import ConvexError, OwlatError
    from owlat.runtime.values import convex_to_json, dumps

    args = _parse_args(options.args)
    _own_issuers(options.app, settings, options.data_dir, _url(settings.host, settings.site_port))
    app = Application(
        load_app_package(options.app),
        _engine(settings, options.data_dir),
        storage=_file_storage(settings, options.data_dir, _url(settings.host, settings.port)),
    )
    await app.start()
    try:
        result = await app.execute(None, options.path, args, internal=True)
    finally:
        await app.close()
    error = result.error
    if isinstance(error, OwlatError):
        _print_log_lines(result.log_lines)
        print(f"error: {error.message}", file=sys.stderr)
        if isinstance(error, ConvexError):
            print(dumps({"errorData": convex_to_json(error.data)}).decode(), file=sys.stderr)
        return 1
    if error is not None:
        raise error
    _print_log_lines(result.log_lines)
    print(dumps(convex_to_json(result.value)).decode())
    return 0


def _run_remote(options: argparse.Namespace, settings: Settings) -> int:
    """`owlat run --url`: the same call through a server's `POST /api/function`."""
    from owlat.runtime.auth import read_admin_key
    from owlat.runtime.errors import OwlatError
    from owlat.runtime.values import convex_to_json, dumps, loads

    args = _parse_args(options.args)
    key = options.admin_key or settings.admin_key or read_admin_key(options.data_dir)
    if not key:
        print(
            f"error: no admin key: pass --admin-key, set OWLAT_ADMIN_KEY, or run where "
            f"{options.data_dir}/admin_key exists",
            file=sys.stderr,
        )
        return 2
    body = {"path": options.path, "args": convex_to_json(args), "format": "convex_encoded_json"}
    request = urllib.request.Request(
        options.url.rstrip("/") + "/api/function",
        data=dumps(body),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Convex {key}",
            "Convex-Client": "owlat-cli-0.1.0",
        },
    )
    try:
        with urllib.request.urlopen(request) as response:
            reply: Any = loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            text = error.read()
        try:
            refusal: Any = loads(text)
            detail = f"{refusal['code']}: {refusal['message']}"
        except (OwlatError, KeyError, TypeError):
            detail = text.decode(errors="replace")
        print(f"error: {error.code} {detail}", file=sys.stderr)
        return 1
    except urllib.error.URLError as error:
        print(f"error: cannot reach {options.url}: {error.reason}", file=sys.stderr)
        return 1
    _print_log_lines(reply.get("logLines", []))
    if reply.get("status") == "success":
        print(dumps(reply["value"]).decode())
        return 0
    print(f"error: {reply.get('errorMessage')}", file=sys.stderr)
    if "errorData" in reply:
        print(dumps({"errorData": reply["errorData"]}).decode(), file=sys.stderr)
    return 1


# -- owlat.app: its own token issuer, platform admins -----------------------------------------


def _own_issuers(
    app: str, settings: Settings, data_dir: Path, site_url: str
) -> tuple[TrustedIssuer, ...]:
    """owlat.app signs its users' JWTs: configure it, and trust its key by default."""
    if app != "owlat.app":
        return ()
    from owlat.app.lib.instance import configure_from_settings
    from owlat.app.lib.signing_key import jwks
    from owlat.runtime.auth import TrustedIssuer

    instance = configure_from_settings(settings, data_dir, site_url)
    return (
        TrustedIssuer(
            issuer=instance.base_url,
            audience=instance.base_url,
            jwks=jwks(data_dir),
            algorithms=("EdDSA",),
        ),
    )


async def _create_admin(options: argparse.Namespace, settings: Settings) -> int:
    import getpass
    import os

    from owlat.app.lib.errors import AuthFailure
    from owlat.app.lib.passwords import hash_password
    from owlat.runtime.app_package import load_app_package
    from owlat.runtime.application import Application
    from owlat.runtime.errors import OwlatError

    password = options.password or os.environ.get("OWLAT_ADMIN_PASSWORD")
    if not password:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password again: "):
            print("error: the passwords differ", file=sys.stderr)
            return 2
    _own_issuers(options.app, settings, options.data_dir, _url(settings.host, settings.site_port))
    try:
        password_hash = await hash_password(password, options.email)
    except AuthFailure as error:
        rules = "10 to 128 characters, no control characters, not a common one nor like the email"
        print(f"error: {error.message} ({rules})", file=sys.stderr)
        return 2
    app = Application(
        load_app_package(options.app),
        _engine(settings, options.data_dir),
    )
    await app.start()
    try:
        result = await app.run(
            None,
            "auth:createPlatformAdmin",
            {"email": options.email, "name": options.name, "passwordHash": password_hash},
            internal=True,
        )
    except OwlatError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    finally:
        await app.close()
    print(f"Platform admin {options.email.strip().lower()} ({result.value}) is ready")
    return 0


# -- owlat dev / serve -----------------------------------------------------------------------


def _url(host: str, port: int) -> str:
    """The URL of a listening address (a wildcard address is reached on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _engine(settings: Settings, data_dir: Path) -> Engine:
    """The configured database engine (SQLite in `data_dir` unless a database URL is set)."""
    from owlat.runtime.database.engines import create_engine

    return create_engine(
        data_dir,
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.database_pool_size,
    )


def _file_storage(settings: Settings, data_dir: Path, client_url: str) -> FileStorage:
    from owlat.runtime.storage import open_file_storage
    from owlat.runtime.storage.blobstores import S3Settings

    s3 = None
    if settings.storage_bucket:
        s3 = S3Settings(
            bucket=settings.storage_bucket,
            endpoint_url=settings.storage_endpoint,
            region=settings.storage_region,
            access_key_id=settings.storage_access_key_id,
            secret_access_key=settings.storage_secret_access_key,
            prefix=settings.storage_prefix,
        )
    return open_file_storage(
        data_dir,
        public_url=settings.public_url or client_url,
        signing_key=settings.storage_signing_key,
        s3=s3,
    )


def _listen(host: str, ports: Sequence[int]) -> list[socket.socket]:
    """A bound socket per port, or exit with a clear message."""
    from owlat.runtime.server import listen_socket

    sockets: list[socket.socket] = []
    try:
        for port in ports:
            sockets.append(listen_socket(host, port))
    except OSError as error:
        for sock in sockets:
            sock.close()
        raise SystemExit(f"error: cannot listen on {host}:{port}: {error.strerror}") from None
    return sockets


def _serve(options: argparse.Namespace, settings: Settings, *, production: bool) -> int:
    import logging

    import uvicorn

    from owlat.runtime.app_package import load_app_package
    from owlat.runtime.application import Application
    from owlat.runtime.auth import Authenticator, load_or_create_admin_key
    from owlat.runtime.server import ConnectionLimits, create_server_app, server_config

    # Before the application installs its log capture: server errors (with tracebacks)
    # go to stderr.
    logging.basicConfig(
        level=logging.WARNING if production else logging.INFO,
        format="%(levelname)s:     %(name)s: %(message)s",
    )
    sockets = _listen(options.host, (options.port, options.site_port))
    client_url, site_url = (_url(options.host, sock.getsockname()[1]) for sock in sockets)
    application = Application(
        load_app_package(options.app),
        _engine(settings, options.data_dir),
        scheduler_parallelism=settings.scheduler_parallelism,
        storage=_file_storage(settings, options.data_dir, client_url),
    )
    authenticator = Authenticator(
        (*settings.auth_issuers, *_own_issuers(options.app, settings, options.data_dir, site_url)),
        admin_key=settings.admin_key or load_or_create_admin_key(options.data_dir),
    )
    limits = ConnectionLimits(
        header_timeout=settings.http_header_timeout,
        body_timeout=settings.http_body_timeout,
        per_address=settings.max_connections_per_address,
        trusted_proxies=settings.trusted_proxies,
    )
    config = server_config(
        create_server_app(application, authenticator, site_port=sockets[1].getsockname()[1]),
        limits,
        host=options.host,
        port=options.port,
        lifespan="on",
        log_level="warning" if production else "info",
        access_log=not production,
    )
    server = uvicorn.Server(config)
    mode = "production" if production else "development"
    with _quiet_signal_reraise(), asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        banner = (
            f"Owlat is serving {client_url} ({mode}; app {options.app}, {options.data_dir}; "
            f"HTTP actions on {site_url})"
        )
        runner.run(_serve_with_banner(server, sockets, banner))
    return 0


async def _serve_with_banner(
    server: uvicorn.Server, sockets: list[socket.socket], banner: str
) -> None:
    """Serve on `sockets` until SIGINT/SIGTERM (uvicorn then shuts down gracefully: in-flight
    requests finish, the lifespan closes the application); print `banner` once listening."""
    serving = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no event)
        await asyncio.sleep(0.02)
    if server.started:
        print(banner, flush=True)
    await serving


@contextmanager
def _quiet_signal_reraise() -> Iterator[None]:
    """uvicorn handles SIGINT/SIGTERM while it serves, then re-raises the signal to the
    previous handler; a no-op handler lets a graceful stop end the process with status 0."""
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# -- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings.from_env()
    options = _parser(settings).parse_args(argv)
    if options.command == "run":
        if options.url:
            return _run_remote(options, settings)
        return asyncio.run(_run_function(options, settings))
    if options.command in ("dev", "serve"):
        return _serve(options, settings, production=options.command == "serve")
    if options.command == "admin":
        return asyncio.run(_create_admin(options, settings))
    if options.command == "contacts":
        from owlat import cli_contacts

        return cli_contacts.run(options, settings, _url(settings.host, settings.port))
    if options.command == "admin-key":
        from owlat.runtime.auth import load_or_create_admin_key

        print(settings.admin_key or load_or_create_admin_key(options.data_dir))
        return 0
    raise AssertionError(options.command)


if __name__ == "__main__":
    sys.exit(main())
