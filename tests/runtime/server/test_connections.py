"""What one client may hold of the server (connections.py), on a real uvicorn in process:
fair clients pass, a WebSocket holds its connection's slot until it closes, trusted proxies
are not capped, and the settings refuse what they cannot use. (`owlat serve` itself is
checked in tests/e2e/test_cli_server.py: slow headers and bodies cut, the cap per address,
forwarded headers from trusted proxies only.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from owlat.config import Settings
from owlat.runtime.server import ConnectionLimits
from tests.e2e.conftest import serve_in_process

pytestmark = pytest.mark.timeout(30)


async def _client(request: Request) -> JSONResponse:
    body = await request.body()
    host = request.client.host if request.client else None
    return JSONResponse({"client": host, "received": len(body)})


async def _echo(socket: WebSocket) -> None:
    await socket.accept()
    with contextlib.suppress(Exception):
        while True:
            await socket.send_text(await socket.receive_text())


APP = Starlette(
    routes=[Route("/client", _client, methods=["GET", "POST"]), WebSocketRoute("/ws", _echo)]
)


@contextlib.asynccontextmanager
async def serving(**limits: Any) -> AsyncIterator[int]:
    async with serve_in_process(APP, limits=ConnectionLimits(**limits)) as url:
        yield int(url.rsplit(":", 1)[1])


class Connection:
    """A raw HTTP/1.1 connection from `local` (any 127.0.0.0/8 address)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, local: str = "127.0.0.1") -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0)))

    async def answer(self) -> bytes:
        """One response (status line to the end of its body)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return head + await asyncio.wait_for(self.reader.readexactly(length), 5)

    async def get(self) -> bytes:
        self.writer.write(b"GET /client HTTP/1.1\r\nhost: x\r\n\r\n")
        return await self.answer()

    async def closed(self) -> bytes:
        """What the server sends before it closes the connection."""
        return await asyncio.wait_for(self.reader.read(), 5)

    def close(self) -> None:
        self.writer.close()


@contextlib.asynccontextmanager
async def connections() -> AsyncIterator[list[Connection]]:
    opened: list[Connection] = []
    try:
        yield opened
    finally:
        for connection in opened:
            connection.close()


async def test_a_fair_client_keeps_its_connection() -> None:
    async with serving(header_timeout=0.5, body_timeout=0.5) as port, connections() as opened:
        connection = await Connection.open(port)
        opened.append(connection)
        assert (await connection.get()).startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(0.8)  # idle between requests: the keep-alive timeout's business
        assert (await connection.get()).startswith(b"HTTP/1.1 200 ")
        # 1,500 bytes over 1 s: past the 0.5 s grace, but at more than 500 bytes/s
        connection.writer.write(b"POST /client HTTP/1.1\r\nhost: x\r\ncontent-length: 1500\r\n\r\n")
        for _ in range(3):
            connection.writer.write(b"x" * 500)
            await asyncio.sleep(0.35)
        answer = await connection.answer()
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'"received":1500}')


async def test_a_websocket_holds_its_slot_until_it_closes() -> None:
    async with serving(header_timeout=0.5, per_address=2) as port, connections() as opened:
        socket = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
        await asyncio.sleep(0.8)  # past the header timeout: an open WebSocket is not cut
        await socket.send("ping")
        assert await socket.recv() == "ping"
        opened.append(await Connection.open(port))
        assert (await opened[-1].get()).startswith(b"HTTP/1.1 200 ")
        opened.append(await Connection.open(port))
        assert (await opened[-1].closed()).startswith(b"HTTP/1.1 503 ")
        await socket.close()
        await asyncio.sleep(0.1)
        opened.append(await Connection.open(port))
        assert (await opened[-1].get()).startswith(b"HTTP/1.1 200 ")


async def test_trusted_proxies_are_not_capped_and_name_the_client() -> None:
    limits = {"per_address": 1, "trusted_proxies": ("127.0.0.2/32",)}
    async with serving(**limits) as port, connections() as opened:
        for _ in range(3):
            opened.append(await Connection.open(port, "127.0.0.2"))
        opened[0].writer.write(
            b"GET /client HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 198.51.100.4\r\n\r\n"
        )
        assert b'"client":"198.51.100.4"' in await opened[0].answer()
        for connection in opened:
            assert b'"client":"127.0.0.2"' in await connection.get()
        opened.append(await Connection.open(port))
        assert (await opened[-1].get()).startswith(b"HTTP/1.1 200 ")
        opened.append(await Connection.open(port))
        assert (await opened[-1].closed()).startswith(b"HTTP/1.1 503 ")


def test_the_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env()
    assert settings.trusted_proxies == ()
    assert (settings.http_header_timeout, settings.http_body_timeout) == (10, 20)
    assert settings.max_connections_per_address == 100
    monkeypatch.setenv("OWLAT_TRUSTED_PROXIES", " 10.0.0.5, 10.1.0.0/16 ,::1")
    assert Settings.from_env().trusted_proxies == ("10.0.0.5/32", "10.1.0.0/16", "::1/128")
    monkeypatch.setenv("OWLAT_TRUSTED_PROXIES", "10.0.0.5,proxy.internal")
    with pytest.raises(SystemExit, match="OWLAT_TRUSTED_PROXIES must list .*'proxy.internal'"):
        Settings.from_env()
    monkeypatch.delenv("OWLAT_TRUSTED_PROXIES")
    monkeypatch.setenv("OWLAT_HTTP_HEADER_TIMEOUT", "0")
    with pytest.raises(SystemExit, match="OWLAT_HTTP_HEADER_TIMEOUT must be between 1 and"):
        Settings.from_env()
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        ConnectionLimits(trusted_proxies=("*",))
    with pytest.raises(ValueError, match="must be positive"):
        ConnectionLimits(per_address=-1)
