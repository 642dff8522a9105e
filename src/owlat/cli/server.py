"""`owlat dev | serve`: the client API (HTTP function API, sync WebSocket, file storage)
and the HTTP actions (site port) in one process, with the scheduler."""

from __future__ import annotations

import asyncio
import enum
import gc
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from owlat.cli._shared import (
    AppOption,
    DataDirOption,
    ExitCode,
    backup_plan,
    dashboard,
    engine,
    epilog,
    file_storage,
    lean_paths,
    own_issuers,
    settings,
    url,
)
from owlat.config import Settings

if TYPE_CHECKING:
    import socket

    import uvicorn

    from owlat.runtime.server import Operations

commands = typer.Typer()

HostOption = Annotated[
    str | None,
    typer.Option(
        help=f"address to listen on (env OWLAT_HOST; default {Settings.host})", show_default=False
    ),
]
PortOption = Annotated[
    int | None,
    typer.Option(
        help=f"client API port (env OWLAT_PORT; default {Settings.port}; 0 picks a free one)",
        show_default=False,
    ),
]
SitePortOption = Annotated[
    int | None,
    typer.Option(
        help=f"HTTP actions port (env OWLAT_SITE_PORT; default {Settings.site_port}; "
        "0 picks a free one)",
        show_default=False,
    ),
]


class LogFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"  # one JSON object per line (logs.JsonFormatter)


LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        help="text, or json: one JSON object per line (time, level, logger, message, "
        "requestId, function), with the functions' own log lines",
    ),
]

_MORE = (
    "Connections are guarded by OWLAT_HTTP_HEADER_TIMEOUT, OWLAT_HTTP_BODY_TIMEOUT, "
    "OWLAT_MAX_CONNECTIONS_PER_ADDRESS and OWLAT_TRUSTED_PROXIES; all settings are in "
    "src/owlat/config.py."
)
_EXITS = {
    ExitCode.OK: "stopped by SIGINT or SIGTERM",
    ExitCode.FAILED: "cannot listen on a port, or the server failed",
}


@commands.command(
    epilog=epilog(
        [
            "owlat dev                          # http://127.0.0.1:3210, HTTP actions on :3211",
            "owlat dev --port 0 --site-port 0   # free ports, printed in the first line",
        ],
        _EXITS,
        _MORE,
    )
)
def dev(
    app: AppOption = None,
    data_dir: DataDirOption = None,
    host: HostOption = None,
    port: PortOption = None,
    site_port: SitePortOption = None,
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Run Owlat for development (verbose logs, an access log); the first line printed
    says where it serves."""
    _serve(settings(), app, data_dir, host, port, site_port, log_format, production=False)


@commands.command(
    epilog=epilog(
        [
            "OWLAT_DATABASE_URL=postgresql://owlat@db/owlat owlat serve --host 0.0.0.0",
            "owlat serve --data-dir /var/lib/owlat --port 8000 --site-port 8001",
        ],
        _EXITS,
        _MORE,
    )
)
def serve(
    app: AppOption = None,
    data_dir: DataDirOption = None,
    host: HostOption = None,
    port: PortOption = None,
    site_port: SitePortOption = None,
    log_format: LogFormatOption = LogFormat.TEXT,
) -> None:
    """Run Owlat in production (warnings and errors only; with `--log-format json`, the
    functions' log lines too); several processes may serve one PostgreSQL database behind
    a load balancer."""
    _serve(settings(), app, data_dir, host, port, site_port, log_format, production=True)


def _serve(
    settings: Settings,
    app: str | None,
    data_dir: Path | None,
    host: str | None,
    port: int | None,
    site_port: int | None,
    log_format: LogFormat,
    *,
    production: bool,
) -> None:

    from owlat.runtime.app_package import load_app_package
    from owlat.runtime.application import Application
    from owlat.runtime.auth import Authenticator, load_or_create_admin_key
    from owlat.runtime.server import (
        ConnectionLimits,
        Operations,
        create_server_app,
        server_config,
    )

    app = app or settings.app
    data_dir = data_dir or settings.data_dir
    host = host or settings.host
    # Before the application installs its log capture: server errors (with tracebacks)
    # go to stderr.
    _configure_logging(log_format, production)
    ports = (
        settings.port if port is None else port,
        settings.site_port if site_port is None else site_port,
    )
    sockets = _listen(host, ports)
    client_url, site_url = (url(host, sock.getsockname()[1]) for sock in sockets)
    application = Application(
        load_app_package(app),
        engine(settings, data_dir),
        scheduler_parallelism=settings.scheduler_parallelism or None,  # 0: no scheduler
        storage=file_storage(settings, data_dir, client_url),
        metrics=settings.metrics,
        backups=backup_plan(settings, data_dir),
    )
    authenticator = Authenticator(
        (
            *settings.auth_issuers,
            *own_issuers(app, settings, data_dir, site_url, development=not production),
        ),
        admin_key=settings.admin_key or load_or_create_admin_key(data_dir),
    )
    limits = ConnectionLimits(
        header_timeout=settings.http_header_timeout,
        body_timeout=settings.http_body_timeout,
        per_address=settings.max_connections_per_address,
        trusted_proxies=settings.trusted_proxies,
    )
    web = dashboard(app, settings, client_url)
    operations = Operations(application, authenticator, settings.metrics_token)
    server_app = create_server_app(
        application,
        authenticator,
        site_port=sockets[1].getsockname()[1],
        web=web,
        operations=operations,
    )
    config = server_config(
        lean_paths(app, server_app, application, authenticator, sockets[1].getsockname()[1]),
        limits,
        host=host,
        port=sockets[0].getsockname()[1],
        lifespan="on",
        log_level="warning" if production else "info",
        access_log=not production,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        # JSON: uvicorn's loggers go through the root logger's JSON handler
        **({"log_config": None} if log_format is LogFormat.JSON else {}),
    )
    server = _draining_server(config, operations, settings.shutdown_timeout)
    mode = "production" if production else "development"
    with _quiet_signal_reraise(), asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        banner = (
            f"Owlat is serving {client_url} ({mode}; app {app}, {data_dir}; "
            f"HTTP actions on {site_url})"
        )
        if web is not None:
            built = (web.directory / "index.html").is_file()
            banner += f"\nDashboard: {site_url}/" + (
                "" if built else " (not built: run ./dev start)"
            )
        runner.run(_serve_with_banner(server, sockets, banner))


def _configure_logging(log_format: LogFormat, production: bool) -> None:
    """The server's log on stderr: warnings and up in production, info in development;
    as JSON lines with `json`, where the functions' own lines are always kept."""
    import logging

    from owlat.runtime import logs

    level = logging.WARNING if production else logging.INFO
    if log_format is not LogFormat.JSON:
        logging.basicConfig(level=level, format="%(levelname)s:     %(name)s: %(message)s")
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logs.JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler])
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(level)
    logs.function_logger.setLevel(logging.INFO)


def _draining_server(
    config: uvicorn.Config, operations: Operations, grace: float
) -> uvicorn.Server:
    """A uvicorn server whose graceful stop first stops listening and drains: /readyz
    turns 503, sync sockets answer their mutations and close with 1001 (going away), running
    scheduled jobs finish (`Operations.drain`, each within `grace` seconds); then uvicorn's
    own stop finishes the HTTP requests in flight and the lifespan closes the Application.
    A second SIGINT (Ctrl-C) cuts the drain short, as it does uvicorn's own wait."""
    import logging

    import uvicorn

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for server in self.servers:
                server.close()  # stop accepting connections
            draining = asyncio.ensure_future(operations.drain(grace))
            while not draining.done() and not self.force_exit:  # a second Ctrl-C: now
                await asyncio.wait({draining}, timeout=0.1)
            if not draining.done():
                draining.cancel()
            (outcome,) = await asyncio.gather(draining, return_exceptions=True)
            if isinstance(outcome, Exception):
                logging.getLogger("owlat.server").error("draining failed", exc_info=outcome)
            await super().shutdown(sockets)

    return DrainingServer(config)


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


async def _serve_with_banner(
    server: uvicorn.Server, sockets: list[socket.socket], banner: str
) -> None:
    """Serve on `sockets` until SIGINT/SIGTERM (uvicorn then shuts down gracefully: in-flight
    requests finish, the lifespan closes the application); print `banner` once listening."""
    serving = asyncio.create_task(server.serve(sockets=sockets))
    while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no event)
        await asyncio.sleep(0.02)
    if server.started:
        _freeze_startup_objects()
        print(banner, flush=True)
    await serving


def _freeze_startup_objects() -> None:
    """Leave what start-up made (modules, the schema, the application) out of the garbage
    collector's full passes: with them, one full pass stalls every request for tens of
    milliseconds; without them, it scans only what serving made since."""
    gc.collect()
    gc.freeze()


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
