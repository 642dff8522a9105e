"""What the commands share: exit codes, refusals, common options, help epilogs, and the
pieces of a deployment a command opens (settings, engine, file storage, Owlat's issuer)."""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from owlat.config import Settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from owlat.cli._remote import Remote
    from owlat.runtime.application import Application
    from owlat.runtime.auth import Authenticator, TrustedIssuer
    from owlat.runtime.backups import BackupPlan, BackupTarget
    from owlat.runtime.database.engine import Engine
    from owlat.runtime.server import WebApp
    from owlat.runtime.storage import FileStorage
    from owlat.runtime.storage.blobstores import S3Settings

# owlat.app's dashboard as `vite build` writes it (web/vite.config.ts), shipped in the wheel
DASHBOARD_DIR = Path(__file__).resolve().parents[1] / "web"


class ExitCode(enum.IntEnum):
    """The exit status of every `owlat` command (each command's help says which it uses)."""

    OK = 0
    FAILED = 1  # the function, the server or the import failed; the server refused
    USAGE = 2  # bad usage or refused input: options, arguments, files, passwords
    ROW_ERRORS = 3  # `contacts import`: finished, but some rows failed
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class CliError(Exception):
    """A refusal to print as `error: ...`, ending the command with `status`."""

    def __init__(self, message: str, status: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.status = status


def fail(message: str, status: ExitCode = ExitCode.FAILED) -> NoReturn:
    """Print `error: message` on stderr and end the command with `status`."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(status)


@contextmanager
def refusals_reported() -> Iterator[None]:
    """A `CliError` raised in the block ends the command as `fail` does."""
    try:
        yield
    except CliError as error:
        fail(str(error), error.status)


def epilog(examples: Sequence[str], exits: Mapping[ExitCode, str], notes: str = "") -> str:
    """A command's help epilog (markdown): examples, what each exit status means, notes."""
    status = "; ".join(f"**{int(code)}** {meaning}" for code, meaning in exits.items())
    text = "**Examples**\n\n```\n" + "\n".join(examples) + f"\n```\n\n**Exit status**: {status}."
    return f"{text}\n\n{notes}" if notes else text


# -- options every command spells the same way (None: the setting from the environment) --

AppOption = Annotated[
    str | None,
    typer.Option(
        "--app", help=f"app package (env OWLAT_APP; default {Settings.app})", show_default=False
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help=f"data folder (env OWLAT_DATA_DIR; default {Settings.data_dir})",
        show_default=False,
    ),
]
AdminKeyOption = Annotated[
    str | None,
    typer.Option(
        "--admin-key",
        help="admin key for the server (default: env OWLAT_ADMIN_KEY, then the data folder's)",
        show_default=False,
    ),
]


def settings() -> Settings:
    return Settings.from_env()


def admin_key(given: str | None, settings: Settings, data_dir: Path) -> str:
    """The admin key for calls to a server: the option, OWLAT_ADMIN_KEY, the data folder's."""
    from owlat.runtime.auth import read_admin_key

    key = given or settings.admin_key or read_admin_key(data_dir)
    if not key:
        raise CliError(
            f"no admin key: pass --admin-key, set OWLAT_ADMIN_KEY, or run where "
            f"{data_dir}/admin_key exists",
            ExitCode.USAGE,
        )
    return key


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="server URL (default: the local server, http://HOST:PORT from the settings)",
        show_default=False,
    ),
]


def remote(server_url: str | None, key: str | None, data_dir: Path | None) -> Remote:
    """The running server at `server_url` (default: the local one), called with the admin
    key (`admin_key`)."""
    from owlat.cli._remote import Remote

    current = settings()
    return Remote(
        server_url or url(current.host, current.port),
        admin_key(key, current, data_dir or current.data_dir),
    )


def url(host: str, port: int) -> str:
    """The URL of a listening address (a wildcard address is reached on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def engine(settings: Settings, data_dir: Path, *, memory_map: bool = True) -> Engine:
    """The configured database engine (SQLite in `data_dir` unless a database URL is set;
    `memory_map`: see `create_engine`)."""
    from owlat.runtime.database.engines import create_engine

    return create_engine(
        data_dir,
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.database_pool_size,
        memory_map=memory_map,
    )


def _s3_settings(settings: Settings, prefix: str) -> S3Settings:
    from owlat.runtime.storage.blobstores import S3Settings

    return S3Settings(
        bucket=settings.storage_bucket,
        endpoint_url=settings.storage_endpoint,
        region=settings.storage_region,
        access_key_id=settings.storage_access_key_id,
        secret_access_key=settings.storage_secret_access_key,
        prefix=prefix,
    )


def file_storage(settings: Settings, data_dir: Path, client_url: str) -> FileStorage:
    from owlat.runtime.storage import open_file_storage

    return open_file_storage(
        data_dir,
        public_url=settings.public_url or client_url,
        signing_key=settings.storage_signing_key,
        s3=_s3_settings(settings, settings.storage_prefix) if settings.storage_bucket else None,
    )


def backup_target(settings: Settings, data_dir: Path) -> BackupTarget:
    """Where backups go: `<data_dir>/backups`, or the storage bucket under the backup prefix."""
    from owlat.runtime.backups import FOLDER, FolderTarget, S3Target

    if settings.backup_to == "s3":
        from owlat.runtime.storage.blobstores.s3 import S3BlobStore

        return S3Target(S3BlobStore(_s3_settings(settings, settings.backup_prefix)))
    return FolderTarget(data_dir / FOLDER)


def backup_plan(settings: Settings, data_dir: Path) -> BackupPlan | None:
    """The scheduled backups a server takes (None: OWLAT_BACKUP_SCHEDULE is empty)."""
    from owlat.runtime.backups import BackupPlan, BackupSchedule

    if not settings.backup_schedule:
        return None
    return BackupPlan(
        BackupSchedule.parse(settings.backup_schedule),
        settings.backup_keep,
        backup_target(settings, data_dir),
    )


def own_issuers(
    app: str, settings: Settings, data_dir: Path, site_url: str, *, development: bool = False
) -> tuple[TrustedIssuer, ...]:
    """owlat.app signs its users' JWTs: configure it (`development`: for `owlat dev`), and
    trust its key by default."""
    if app != "owlat.app":
        return ()
    from owlat.app.lib.instance import configure_from_settings
    from owlat.app.lib.signing_key import jwks
    from owlat.runtime.auth import TrustedIssuer

    instance = configure_from_settings(settings, data_dir, site_url, development=development)
    return (
        TrustedIssuer(
            issuer=instance.base_url,
            audience=instance.base_url,
            jwks=jwks(data_dir),
            algorithms=("EdDSA",),
        ),
    )


def lean_paths(
    app: str,
    server: ASGIApp,
    application: Application,
    authenticator: Authenticator,
    site_port: int,
) -> ASGIApp:
    """owlat.app's open pixels, click redirects and `POST /api/v1/transactional` answered
    before the site port's Starlette stack, with its request ids (app/site_paths.py);
    other apps: `server`."""
    if app != "owlat.app":
        return server
    from owlat.app.site_paths import SitePaths
    from owlat.app.tracking_paths import TrackingEndpoint
    from owlat.runtime import ActionCtx, Auth
    from owlat.runtime.server.http_actions import HttpActions
    from owlat.runtime.server.middleware import RequestIds

    tracking = TrackingEndpoint(ActionCtx(application, Auth(None)))
    intake = HttpActions(application, authenticator).site_endpoint()
    return SitePaths(server, RequestIds(tracking), RequestIds(intake), site_port)


def dashboard(app: str, settings: Settings, client_url: str) -> WebApp | None:
    """owlat.app's dashboard for the root of the site port (None for other apps): the page
    learns where the client API is from its `owlat-client-url` meta tag."""
    if app != "owlat.app":
        return None
    from owlat.runtime.server import WebApp

    client = settings.public_url.rstrip("/") or client_url
    socket_origin = "ws" + client.removeprefix("http")  # http→ws, https→wss
    # img-src: the client API's origin serves uploaded media (template previews show them)
    policy = (
        f"default-src 'self'; script-src 'self'; connect-src 'self' {client} {socket_origin}; "
        f"style-src 'self' 'unsafe-inline'; img-src 'self' data: {client}; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
    return WebApp(
        settings.web_dir or DASHBOARD_DIR,
        meta={"owlat-client-url": client},
        headers={
            "content-security-policy": policy,
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            # links carry tokens (/auth/reset-password?token=, /invite/accept?token=)
            "referrer-policy": "same-origin",
        },
        not_built=(
            "<!doctype html><html lang=en><meta charset=utf-8><title>Owlat</title>"
            "<h1>Owlat's dashboard is not built</h1><p>{folder} has no index.html. In a "
            "source checkout, <code>./dev start</code> builds it (it needs Node.js 20 or "
            "newer: <code>apt-get install nodejs npm</code> or https://nodejs.org); "
            "<code>scripts/build-web</code> builds it alone. The <code>owlat</code> wheel "
            "ships it built.</p></html>"
        ),
    )
