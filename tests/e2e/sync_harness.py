"""A server for sync-socket tests, with its `SyncService` in reach, and a raw protocol client.

`sync_server(...)` serves the fixture app's sync routes with uvicorn in this process and
event loop (like the `server` fixture, but exposing the `SyncService`, so a test can drop
sockets or count subscriptions, and with a few extra functions registered under
`syncTest:*`). `RawSocket` speaks the protocol with the `websockets` library for edge
cases no official client would produce.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import websockets
from starlette.applications import Starlette

from owlat.runtime import action, mutation, query, v
from owlat.runtime.app_package import load_app_package
from owlat.runtime.application import Application
from owlat.runtime.auth import Authenticator
from owlat.runtime.database.engines import create_engine
from owlat.runtime.server.connections import ConnectionLimits
from owlat.runtime.server.websocket import service_routes
from owlat.runtime.sync.worker import SyncConfig, SyncService
from tests.e2e.conftest import FIXTURE_APP, Issuers, serve_in_process

ADMIN_KEY = "owlat-admin|sync-tests"
REPO = Path(__file__).resolve().parents[2]


async def _read_counter(ctx: Any, name: str) -> Any:
    return await (
        ctx.db.query("counters").with_index("by_name", lambda q: q.eq("name", name)).unique()
    )


@query(args={"prefix": v.string()})
async def pair(ctx: Any, args: dict[str, Any]) -> list[float]:
    """Two counters that `bump_pair` always changes together."""
    counters = [await _read_counter(ctx, f"{args['prefix']}-{side}") for side in "ab"]
    return [0.0 if c is None else float(c["count"]) for c in counters]


@mutation(args={"prefix": v.string()})
async def bump_pair(ctx: Any, args: dict[str, Any]) -> float:
    value = 0.0
    for side in "ab":
        name = f"{args['prefix']}-{side}"
        counter = await _read_counter(ctx, name)
        if counter is None:
            await ctx.db.insert("counters", {"name": name, "count": 1.0})
            value = 1.0
        else:
            value = counter["count"] + 1
            await ctx.db.patch(counter["_id"], {"count": value})
    return float(value)


@query(args={})
async def whoami(ctx: Any, args: dict[str, Any]) -> Any:
    identity = await ctx.auth.get_user_identity()
    return None if identity is None else identity["subject"]


@mutation(args={"seconds": v.number()})
async def slow(ctx: Any, args: dict[str, Any]) -> None:
    """Holds the socket's mutation queue (and the writer) for a while."""
    await asyncio.sleep(args["seconds"])


@action(args={"seconds": v.number()})
async def slow_action(ctx: Any, args: dict[str, Any]) -> None:
    await asyncio.sleep(args["seconds"])


@query(args={"size": v.number()})
async def text(ctx: Any, args: dict[str, Any]) -> str:
    """A string of `size` characters (frames of every length class)."""
    return "é" * int(args["size"])


EXTRA_FUNCTIONS = {
    "syncTest:text": text,
    "syncTest:pair": pair,
    "syncTest:bumpPair": bump_pair,
    "syncTest:whoami": whoami,
    "syncTest:slow": slow,
    "syncTest:slowAction": slow_action,
}


@dataclasses.dataclass(frozen=True)
class SyncServer:
    url: str
    application: Application
    service: SyncService
    issuers: Issuers

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/sync"

    async def count(self, channel: str) -> int:
        """How many messages the database holds in `channel` (a fresh query)."""
        result = await self.application.run_query("messages:list", {"channel": channel})
        return len(result.value)


@contextlib.asynccontextmanager
async def sync_server(
    data_dir: Path,
    issuers: Issuers,
    config: SyncConfig | None = None,
    database_url: str = "",
    *,
    deflate: bool = False,
) -> AsyncIterator[SyncServer]:
    """uvicorn configured as `owlat dev/serve` do (permessage-deflate declined, so frames
    are written straight on the transport), without a per-address connection cap; with
    `deflate`, uvicorn's defaults (deflate accepted when offered: frames go through the
    ASGI send path)."""
    engine = create_engine(data_dir, database_url)
    application = Application(load_app_package(FIXTURE_APP), engine)
    for path, definition in EXTRA_FUNCTIONS.items():
        application.package.functions.add(path, definition)
    authenticator = Authenticator([issuers.rs256.trusted()], admin_key=ADMIN_KEY)
    await application.start()
    service = SyncService(application, authenticator, config)
    try:
        limits = None if deflate else ConnectionLimits(per_address=0)
        app = Starlette(routes=service_routes(service))
        async with serve_in_process(app, limits=limits) as url:
            yield SyncServer(url, application, service, issuers)
    finally:
        service.close()
        await application.close()


class RawSocket:
    """A sync client written with `websockets`, one JSON message at a time."""

    def __init__(self, connection: websockets.ClientConnection) -> None:
        self.connection = connection

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        url: str,
        *,
        connect: bool = True,
        session_id: str | None = None,
        compression: str | None = None,
    ) -> AsyncIterator[RawSocket]:
        """A socket to `url`, by default already past `Connect` with a new session id and
        not offering permessage-deflate (`owlat dev/serve` decline it, so frames take the
        direct path of server/websocket.py; `compression="deflate"` offers it)."""
        async with websockets.connect(url, max_size=None, compression=compression) as connection:
            socket = cls(connection)
            if connect:
                await socket.send(
                    {
                        "type": "Connect",
                        "sessionId": session_id or str(uuid.uuid4()),
                        "connectionCount": 0,
                        "lastCloseReason": "InitialConnect",
                        "clientTs": 0,
                    }
                )
            yield socket

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.connection.send(message if isinstance(message, str) else json.dumps(message))

    async def receive(self, within: float = 5.0) -> dict[str, Any]:
        """The next message that is not a Ping (within `within` seconds overall)."""
        async with asyncio.timeout(within):
            while True:
                message: dict[str, Any] = json.loads(await self.connection.recv())
                if message["type"] != "Ping":
                    return message

    async def closed(self, within: float = 5.0) -> tuple[int, str]:
        """Wait for the server to close the socket; its close code and reason."""
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(within):
                while True:
                    await self.connection.recv()
        close = self.connection.protocol.close_rcvd
        assert close is not None, "the server did not send a close frame"
        return close.code, close.reason
