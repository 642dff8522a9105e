"""Fixtures for owlat.app tests.

- `owlat`: the app in process (no server) on a fresh data folder, with the instance
  configured; `Caller`s made by `signed_in(...)` call its functions as a user with a
  session (identity as an Owlat JWT would give it), no password hashing involved.
- `site`: the real server on both ports (`owlat dev`'s wiring: Owlat trusted as its own
  issuer), with an httpx client per browser (`site.browser()`) that keeps cookies and
  sends the site's Origin.
- `owlat_on_both_engines`, `site_on_both_engines`: the same on SQLite and on PostgreSQL; a
  module runs on both engines by redefining `owlat` (or `site`) as one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email
import email.policy
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from owlat.app.lib import instance
from owlat.app.lib.email_providers.configured import close_kept
from owlat.app.lib.signing_key import jwks
from owlat.cli._shared import lean_paths
from owlat.runtime.application import Application
from owlat.runtime.auth import Authenticator, TrustedIssuer, load_or_create_admin_key
from owlat.runtime.database.engines import create_engine
from owlat.runtime.server import WebApp, create_server_app, listen_socket
from owlat.runtime.storage import FileData, open_file_storage, store_file
from owlat.runtime.storage.upload_tokens import UploadGrant
from owlat.runtime.testing import in_query, open_test_app
from tests.app.domains.dns_server import DnsServer
from tests.e2e.conftest import serve_in_process

BASE_URL = "http://owlat.test"
# Instance settings of every test site and app: sign-ins not limited by address, and password
# hashes at argon2's least cost (production's costs ~0.2 s of CPU per hash or verification;
# test_passwords.py checks that production keeps it).
CHEAP_HASHING = instance.PasswordCost(time_cost=1, memory_cost=8, parallelism=1)
FAST = {"sign_in_attempts_per_ip": 1000, "password_hashing": CHEAP_HASHING}


@dataclasses.dataclass
class Caller:
    """A signed-in user of the in-process app."""

    app: Application
    user_id: str
    session_id: str
    email: str

    @property
    def identity(self) -> dict[str, Any]:
        base = instance.current().base_url
        return {
            "tokenIdentifier": f"{base}|{self.user_id}",
            "subject": self.user_id,
            "issuer": base,
            "sid": self.session_id,
        }

    async def query(self, path: str, args: dict[str, Any] | None = None) -> Any:
        return (await self.app.run_query(path, args or {}, identity=self.identity)).value

    async def mutation(self, path: str, args: dict[str, Any] | None = None) -> Any:
        return (await self.app.run_mutation(path, args or {}, identity=self.identity)).value

    async def action(self, path: str, args: dict[str, Any] | None = None) -> Any:
        return (await self.app.run_action(path, args or {}, identity=self.identity)).value


async def signed_in(
    app: Application, email_address: str, name: str = "Test User", *, verified: bool = True
) -> Caller:
    """A new user with a session; their email is verified unless `verified=False`."""
    created = await app.run_mutation(
        "auth:createUser",
        {
            "email": email_address,
            "name": name,
            "passwordHash": "not-a-real-hash",
            "emailVerified": verified,
        },
        internal=True,
    )
    session = await app.run_mutation(
        "auth:createSession",
        {"userId": created.value["userId"], "tokenHash": f"hash-{email_address}"},
        internal=True,
    )
    return Caller(app, created.value["userId"], session.value["_id"], email_address.lower())


async def with_organization(caller: Caller, slug: str) -> str:
    organization = await caller.mutation(
        "organizations:create", {"name": slug.title(), "slug": slug}
    )
    return str(organization["_id"])


async def uploaded(app: Application, organization_id: str, data: FileData) -> str:
    """A file stored as an upload URL generated for `organization_id` stores it."""
    return await store_file(app, data, grant=UploadGrant(owner=organization_id))


async def owner_and_editor(owlat: Application, slug: str = "acme") -> tuple[Caller, Caller, str]:
    """An owner (admin rights) and an editor, active in one new organization; its id."""
    owner = await signed_in(owlat, f"owner@{slug}.example")
    organization_id = await with_organization(owner, slug)
    editor = await signed_in(owlat, f"editor@{slug}.example")
    invitation = await owner.mutation(
        "invitations:invite", {"email": editor.email, "role": "editor"}
    )
    await editor.mutation("invitations:accept", {"invitationId": invitation["_id"]})
    await editor.mutation("organizations:setActive", {"organizationId": organization_id})
    return owner, editor, organization_id


@pytest.fixture
async def owlat(tmp_path: Path) -> AsyncIterator[Application]:
    instance.configure(tmp_path, BASE_URL, **FAST)  # type: ignore[arg-type]
    async with providers_closed(), open_test_app("owlat.app", tmp_path) as application:
        yield application


@pytest.fixture
async def owlat_on_both_engines(tmp_path: Path, database_url: str) -> AsyncIterator[Application]:
    """`owlat` on SQLite and on PostgreSQL; a test module whose behaviour depends on the
    engine (pushed-down filters, counts) runs on both by redefining `owlat` as this."""
    instance.configure(tmp_path, BASE_URL, **FAST)  # type: ignore[arg-type]
    async with (
        providers_closed(),
        open_test_app("owlat.app", tmp_path, database_url=database_url) as application,
    ):
        yield application


def outbox(data_dir: Path) -> list[email.message.EmailMessage]:
    folder = data_dir / "outbox"
    if not folder.exists():
        return []
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted(folder.glob("*.eml"))
    ]


def mail_text(message: email.message.EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


@dataclasses.dataclass
class Site:
    url: str  # client port (Convex API)
    site_url: str  # site port (/api/auth)
    application: Application
    data_dir: Path

    @contextlib.asynccontextmanager
    async def browser(self, origin: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
        headers = {"origin": origin or self.site_url}
        async with httpx.AsyncClient(base_url=self.site_url + "/api/auth", headers=headers) as http:
            yield http

    def outbox(self) -> list[email.message.EmailMessage]:
        return outbox(self.data_dir)


@contextlib.asynccontextmanager
async def start_site(
    data_dir: Path,
    *,
    database_url: str = "",
    web: Callable[[str], WebApp | None] | None = None,
    lean: bool = True,
    **options: Any,
) -> AsyncIterator[Site]:
    """The real server on `database_url` (SQLite in `data_dir` when empty); `web(client URL)`
    gives the web app at the root of the site port, if any; `lean=False` leaves the paths
    `owlat serve` answers first (app/site_paths.py) to the Starlette stack; `options`
    configure the instance (`instance.configure`)."""
    sockets = [listen_socket("127.0.0.1", 0), listen_socket("127.0.0.1", 0)]
    site_url = f"http://127.0.0.1:{sockets[1].getsockname()[1]}"
    configured = instance.configure(data_dir, site_url, **{**FAST, **options})
    storage = open_file_storage(data_dir, public_url="")
    application = Application(
        load_app("owlat.app"),
        create_engine(data_dir, database_url),
        storage=storage,
        scheduler_parallelism=8,
    )
    authenticator = Authenticator(
        [
            TrustedIssuer(
                issuer=configured.base_url,
                audience=configured.base_url,
                jwks=jwks(data_dir),
                algorithms=("EdDSA",),
            )
        ],
        admin_key=load_or_create_admin_key(data_dir),
    )
    site_port = sockets[1].getsockname()[1]
    app = create_server_app(
        application,
        authenticator,
        site_port=site_port,
        web=None if web is None else web(f"http://127.0.0.1:{sockets[0].getsockname()[1]}"),
    )
    if lean:  # as `owlat serve` (app/site_paths.py)
        app = lean_paths("owlat.app", app, application, authenticator, site_port)
    async with providers_closed(), serve_in_process(app, sockets) as url:
        storage.public_url = url
        yield Site(url, site_url, application, data_dir)


@contextlib.asynccontextmanager
async def providers_closed() -> AsyncIterator[None]:
    """The email providers a test's deliveries kept open are closed once its server or
    application has stopped (their SMTP connections would otherwise be collected open,
    later, in another test)."""
    try:
        yield
    finally:
        await close_kept()


def load_app(name: str) -> Any:
    from owlat.runtime.app_package import load_app_package

    return load_app_package(name)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with start_site(tmp_path) as running:
        yield running


@pytest.fixture
async def site_on_both_engines(tmp_path: Path, database_url: str) -> AsyncIterator[Site]:
    """`site` on SQLite and on PostgreSQL; a test module runs on both by redefining `site`
    as this (like `owlat_on_both_engines`)."""
    async with start_site(tmp_path, database_url=database_url) as running:
        yield running


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    """A real DNS server on loopback (dnslib), one per test module."""
    with DnsServer.running() as server:
        yield server


@pytest.fixture
def dns(dns_server: DnsServer) -> DnsServer:
    """The module's DNS server with empty zones."""
    dns_server.clear()
    return dns_server


async def until_organization_deleted(app: Application, organization_id: str) -> None:
    """Wait (at most 30 s) for `organizations:remove`'s scheduled steps to delete the
    organization's last row: the organization itself."""
    async with asyncio.timeout(30):
        while True:
            if await in_query(app, lambda ctx: ctx.db.get(organization_id)) is None:
                return
            await asyncio.sleep(0.02)
