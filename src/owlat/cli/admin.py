"""`owlat admin-key` (the data folder's admin key), `owlat admin create` (a platform
admin of owlat.app), and, through a running server with the admin key, `owlat admin
organization create`, `owlat admin api-key create` and `owlat admin smtp set` (a first
email without the dashboard), and `owlat admin abuse set` (suspend or ban an organization's
sending)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from owlat.cli._shared import (
    AdminKeyOption,
    AppOption,
    DataDirOption,
    ExitCode,
    UrlOption,
    engine,
    epilog,
    fail,
    own_issuers,
    refusals_reported,
    remote,
    settings,
    url,
)
from owlat.config import Settings

commands = typer.Typer()
admins = typer.Typer(no_args_is_help=True)
commands.add_typer(
    admins,
    name="admin",
    help="Platform admins; organizations and API keys (through a running server).",
    epilog=epilog(
        ['owlat admin create --email you@example.com --name "You"'],
        {ExitCode.OK: "done", ExitCode.USAGE: "bad usage"},
    ),
)


def _server_group(name: str, help: str, example: str) -> typer.Typer:
    """A command group under `owlat admin` whose commands call a running server."""
    group = typer.Typer(no_args_is_help=True)
    admins.add_typer(
        group,
        name=name,
        help=f"{help} (through a running server).",
        epilog=epilog([example], {ExitCode.OK: "done", ExitCode.USAGE: "bad usage"}),
    )
    return group


organizations = _server_group(
    "organization",
    "Create an organization",
    "owlat admin organization create --name Acme --owner you@example.com",
)
api_keys = _server_group(
    "api-key",
    "Mint an organization's API key",
    "owlat admin api-key create --organization acme --quiet",
)
smtp = _server_group(
    "smtp",
    "Set an organization's SMTP relay",
    "owlat admin smtp set --organization acme --host 127.0.0.1 --port 8025 --security none",
)
abuse = _server_group(
    "abuse",
    "Set an organization's abuse status",
    "owlat admin abuse set --organization acme --status suspended --reason 'spam complaints'",
)
_REMOTE_EXITS = {
    ExitCode.OK: "done",
    ExitCode.FAILED: "refused by the server (the reason is printed), or it is unreachable",
    ExitCode.USAGE: "bad usage, or no admin key",
}

_PASSWORD_RULES = "10 to 128 characters, no control characters, not a common one nor like the email"


@commands.command(
    "admin-key",
    epilog=epilog(
        [
            "owlat admin-key",
            "OWLAT_ADMIN_KEY=$(owlat admin-key --data-dir /var/lib/owlat) owlat run ... --url ...",
        ],
        {ExitCode.OK: "the key is printed", ExitCode.FAILED: "the data folder is not writable"},
    ),
)
def admin_key(data_dir: DataDirOption = None) -> None:
    """Print the deployment's admin key: OWLAT_ADMIN_KEY, or the data folder's (created if
    missing, readable by its owner only)."""
    from owlat.runtime.auth import load_or_create_admin_key

    current = settings()
    print(current.admin_key or load_or_create_admin_key(data_dir or current.data_dir))


@admins.command(
    epilog=epilog(
        [
            'owlat admin create --email you@example.com --name "You"   # prompts for a password',
            'OWLAT_ADMIN_PASSWORD=... owlat admin create --email you@example.com --name "You"',
        ],
        {
            ExitCode.OK: "the admin is ready",
            ExitCode.FAILED: "refused by the app (e.g. an invalid email)",
            ExitCode.USAGE: f"bad usage, or a password refused ({_PASSWORD_RULES}) or mistyped",
        },
    )
)
def create(
    email: Annotated[str, typer.Option(help="the admin's email address")],
    name: Annotated[str, typer.Option(help="the admin's name")],
    password: Annotated[
        str | None,
        typer.Option(help="10–128 characters (default: prompted for, or OWLAT_ADMIN_PASSWORD)"),
    ] = None,
    app: AppOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a platform admin with a verified email (or promote an existing user, giving
    them this password)."""
    current = settings()
    user_id = asyncio.run(
        _create_admin(
            email, name, password, app or current.app, current, data_dir or current.data_dir
        )
    )
    print(f"Platform admin {email.strip().lower()} ({user_id}) is ready")


async def _create_admin(
    email: str,
    name: str,
    password: str | None,
    app_name: str,
    settings: Settings,
    data_dir: Path,
) -> str:
    """The admin's user id."""
    import getpass
    import os

    from owlat.app.lib.errors import AuthFailure
    from owlat.app.lib.passwords import hash_password
    from owlat.runtime.app_package import load_app_package
    from owlat.runtime.application import Application
    from owlat.runtime.errors import OwlatError

    password = password or os.environ.get("OWLAT_ADMIN_PASSWORD")
    if not password:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password again: "):
            fail("the passwords differ", ExitCode.USAGE)
    own_issuers(app_name, settings, data_dir, url(settings.host, settings.site_port))
    try:
        password_hash = await hash_password(password, email)
    except AuthFailure as error:
        fail(f"{error.message} ({_PASSWORD_RULES})", ExitCode.USAGE)
    app = Application(load_app_package(app_name), engine(settings, data_dir))
    await app.start()
    try:
        result = await app.run(
            None,
            "auth:createPlatformAdmin",
            {"email": email, "name": name, "passwordHash": password_hash},
            internal=True,
        )
    except OwlatError as error:
        fail(error.message)
    finally:
        await app.close()
    return str(result.value)


@organizations.command(
    "create",
    epilog=epilog(
        ['owlat admin organization create --name "Acme" --owner you@example.com'], _REMOTE_EXITS
    ),
)
def organization_create(
    name: Annotated[str, typer.Option(help="the organization's name")],
    owner: Annotated[str, typer.Option(help="email of an existing user (owlat admin create)")],
    slug: Annotated[
        str | None, typer.Option(help="its slug (default: from the name)", show_default=False)
    ] = None,
    url: UrlOption = None,
    admin_key: AdminKeyOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create an organization owned by an existing user, with a published transactional
    email "welcome" to try the API with; prints its slug and id."""
    import re

    slug = slug or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    with refusals_reported(), remote(url, admin_key, data_dir) as server:
        created = server.call(
            "adminTools:createOrganization", {"name": name, "slug": slug, "ownerEmail": owner}
        )
    print(f"Organization {created['slug']} ({created['organizationId']}) is ready, with the")
    print('published transactional email "welcome" (variable: name)')


@api_keys.command(
    "create",
    epilog=epilog(
        [
            "owlat admin api-key create --organization acme",
            'KEY=$(owlat admin api-key create --organization acme --name "CI" --quiet)',
        ],
        _REMOTE_EXITS,
    ),
)
def api_key_create(
    organization: Annotated[str, typer.Option(help="the organization's slug or id")],
    name: Annotated[str, typer.Option(help="the key's name")] = "CLI",
    scope: Annotated[
        list[str] | None,
        typer.Option(help="a scope (repeatable; default: every scope)", show_default=False),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="print the key alone")] = False,
    url: UrlOption = None,
    admin_key: AdminKeyOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Mint an API key of an organization, in the name of its owner. The key is printed
    once; only its hash is stored."""
    args: dict[str, object] = {"organization": organization, "name": name}
    if scope:
        args["scopes"] = scope
    with refusals_reported(), remote(url, admin_key, data_dir) as server:
        created = server.call("adminTools:createApiKey", args)
    if quiet:
        print(created["apiKey"])
        return
    print(f"API key {created['name']!r} of {organization} (shown once, keep it):")
    print(created["apiKey"])


@smtp.command(
    "set",
    epilog=epilog(
        [
            "owlat admin smtp set --organization acme --host 127.0.0.1 --port 8025 --security none",
            "OWLAT_SMTP_PASSWORD=... owlat admin smtp set --organization acme "
            "--host smtp.example.net --username owlat",
        ],
        _REMOTE_EXITS,
    ),
)
def smtp_set(
    organization: Annotated[str, typer.Option(help="the organization's slug or id")],
    host: Annotated[str, typer.Option(help="the relay's host name or IP address")],
    port: Annotated[int, typer.Option(help="the relay's port")] = 587,
    security: Annotated[
        str, typer.Option(help="starttls (required), tls (implicit, port 465) or none")
    ] = "starttls",
    username: Annotated[str, typer.Option(help="AUTH user name (none: no AUTH)")] = "",
    password: Annotated[
        str,
        typer.Option(envvar="OWLAT_SMTP_PASSWORD", help="AUTH password", show_default=False),
    ] = "",
    url: UrlOption = None,
    admin_key: AdminKeyOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Save the organization's SMTP relay (as the dashboard's Email providers screen does);
    with no route set, its messages then go through it. Under `owlat dev`, a relay on a
    loopback host is a local sink: it may send from any domain, verified or not."""
    args: dict[str, object] = {
        "organization": organization, "host": host, "port": port, "security": security
    }  # fmt: skip
    if username:
        args["username"] = username
    if password:
        args["password"] = password
    with refusals_reported(), remote(url, admin_key, data_dir) as server:
        saved = server.call("adminTools:saveSmtp", args)
    settings = saved["settings"]
    print(
        f"SMTP relay {settings['host']}:{int(settings['port'])} ({settings['security']}) "
        f"saved for {organization}"
    )


_ABUSE_SET = "owlat admin abuse set --organization acme --status suspended --reason 'spam'"


@abuse.command(
    "set",
    epilog=epilog(
        [_ABUSE_SET, "owlat admin abuse set --organization acme --status clean"], _REMOTE_EXITS
    ),
)
def abuse_set(
    organization: Annotated[str, typer.Option(help="the organization's slug or id")],
    status: Annotated[str, typer.Option(help="clean, warned, suspended or banned")],
    reason: Annotated[str, typer.Option(help="why (shown in the refusals)")] = "",
    url: UrlOption = None,
    admin_key: AdminKeyOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Set the organization's abuse status: suspended or banned, it sends nothing (the
    transactional API answers 403 abuse_blocked, campaigns refuse SENDING_NOT_ALLOWED)."""
    args: dict[str, object] = {"organization": organization, "status": status}
    if reason:
        args["reason"] = reason
    with refusals_reported(), remote(url, admin_key, data_dir) as server:
        saved = server.call("adminTools:setAbuseStatus", args)
    print(f"Abuse status of {organization}: {saved['abuseStatus']}")
