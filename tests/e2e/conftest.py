"""End-to-end fixtures: the real server over the fixture app.

`server` starts uvicorn in this process and event loop as `owlat dev` does: one server
listening on two free loopback ports, the client port (`url`) and the site port (`site_url`,
HTTP actions), serving `create_server_app(...)` over a fresh SQLite data folder with files
in its `storage` folder; the lifespan starts the `Application`. It yields a
`RunningServer`: the URLs, the `Application` (tests may call it directly: same loop), the
admin key, and `issuers` whose tokens the server trusts (RS256, ES256 and EdDSA).
`start_server` does the same with another file storage. Clients running in other
processes (node, the PyPI client) must be awaited with asyncio subprocesses, never blocking
calls, since the server shares the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from owlat.runtime.app_package import load_app_package
from owlat.runtime.application import Application
from owlat.runtime.auth import Authenticator, load_or_create_admin_key
from owlat.runtime.database.engines import create_engine
from owlat.runtime.server import (
    ConnectionLimits,
    create_server_app,
    listen_socket,
    server_config,
)
from owlat.runtime.storage import FileStorage, open_file_storage
from tests.tokens import TokenIssuer

FIXTURE_APP = "tests.fixtures.app"


@dataclasses.dataclass(frozen=True)
class Issuers:
    """Token issuers the `server` fixture trusts, one per supported algorithm."""

    rs256: TokenIssuer
    es256: TokenIssuer
    eddsa: TokenIssuer


@dataclasses.dataclass(frozen=True)
class RunningServer:
    url: str
    application: Application
    authenticator: Authenticator
    admin_key: str
    data_dir: Path
    issuers: Issuers
    site_url: str


class _InProcessServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # leave the test runner's SIGINT handling alone

    async def main_loop(self) -> None:
        await self.on_tick(0)  # sets the Date and Server headers
        # uvicorn looks every 100 ms; tests end sooner (`should_exit` is a plain flag)
        while not self.should_exit:  # noqa: ASYNC110
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def serve_in_process(
    app: ASGIApp,
    sockets: list[socket.socket] | None = None,
    limits: ConnectionLimits | None = None,
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port (or on `sockets`) until the block
    ends; yields the base URL of the (first) socket. Shutdown is uvicorn's graceful one (the
    lifespan's shutdown runs). With `limits`, uvicorn is configured as `owlat serve` does
    it (`server_config`); without, it keeps uvicorn's own connection handling."""
    options = {"host": "127.0.0.1", "port": 0, "lifespan": "on", "log_config": None}
    if limits is None:
        config = uvicorn.Config(app, ws="websockets-sansio", access_log=False, **options)
    else:
        config = server_config(app, limits, access_log=False, **options)
    server = _InProcessServer(config)
    serving = asyncio.create_task(server.serve(sockets=sockets))
    try:
        while not server.started:
            if serving.done():
                serving.result()  # raises the startup failure
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@pytest.fixture(scope="session")
def issuers() -> Issuers:
    return Issuers(
        rs256=TokenIssuer.generate("https://rs256.issuer.test", "RS256"),
        es256=TokenIssuer.generate("https://es256.issuer.test/", "ES256"),
        eddsa=TokenIssuer.generate("https://eddsa.issuer.test", "EdDSA"),
    )


@contextlib.asynccontextmanager
async def start_server(
    data_dir: Path, issuers: Issuers, storage: FileStorage | None = None, database_url: str = ""
) -> AsyncIterator[RunningServer]:
    """The fixture app served on both ports, on `database_url` (default: SQLite in the data
    folder); files in `storage` (default: the data folder), whose public URL is set to the
    client port's once it is known."""
    storage = storage or open_file_storage(data_dir, public_url="")
    application = Application(
        load_app_package(FIXTURE_APP), create_engine(data_dir, database_url), storage=storage
    )
    admin_key = load_or_create_admin_key(data_dir)
    authenticator = Authenticator(
        [issuers.rs256.trusted(), issuers.es256.trusted(), issuers.eddsa.trusted()],
        admin_key=admin_key,
    )
    sockets = [listen_socket("127.0.0.1", 0), listen_socket("127.0.0.1", 0)]
    site_port = sockets[1].getsockname()[1]
    app = create_server_app(application, authenticator, site_port=site_port)
    async with serve_in_process(app, sockets) as url:
        storage.public_url = url
        yield RunningServer(
            url,
            application,
            authenticator,
            admin_key,
            data_dir,
            issuers,
            f"http://127.0.0.1:{site_port}",
        )


@pytest.fixture
async def server(
    tmp_path: Path, issuers: Issuers, database_url: str
) -> AsyncIterator[RunningServer]:
    async with start_server(tmp_path, issuers, database_url=database_url) as running:
        yield running


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client with the server's URL as base."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        yield http
