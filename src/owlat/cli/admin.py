"""`owlat admin-key` (the data folder's admin key) and `owlat admin create` (a platform
admin of owlat.app)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from owlat.cli._shared import (
    AppOption,
    DataDirOption,
    ExitCode,
    engine,
    epilog,
    fail,
    own_issuers,
    settings,
    url,
)
from owlat.config import Settings

commands = typer.Typer()
admins = typer.Typer(no_args_is_help=True)
commands.add_typer(
    admins,
    name="admin",
    help="Manage Owlat's platform admins.",
    epilog=epilog(
        ['owlat admin create --email you@example.com --name "You"'],
        {ExitCode.OK: "done", ExitCode.USAGE: "bad usage"},
    ),
)

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
