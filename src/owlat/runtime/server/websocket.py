"""The sync WebSocket endpoint: `/api/sync` (Rust/Python clients) and `/api/{version}/sync`
(npm clients put their version in the path).

A thin adapter: it accepts the socket, moves text frames between it and a `SyncWorker`,
and when the worker ends with an error closes the socket with that error's close code and a
`"<code>: <message>"` reason (errors.py maps the codes). Everything else is in `sync/`.

Frames out take a short path when the server is uvicorn's websockets-sansio protocol: a
frame is written on the TCP transport at once (`_SocketTransport.sender`), without the
ASGI send chain, websockets' framing objects or an await. That is what lets a commit's
Transitions go out to many sockets from one task (sync/worker.py). The ASGI path stays for
the handshake, close frames, and any moment the direct write is not safe (transport paused
by flow control, closing, a negotiated extension such as permessage-deflate).
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Callable

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from owlat.runtime.errors import OwlatError, websocket_close_code
from owlat.runtime.sync.worker import SocketClosed, SyncService, SyncWorker

logger = logging.getLogger("owlat.runtime.sync")

MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes


def text_frame_header(length: int) -> bytes:
    """The header of an unmasked, final text frame (server to client) of `length` bytes."""
    if length < 126:
        return bytes((0x81, length))
    if length < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


def _sansio_protocol(websocket: WebSocket) -> WebSocketsSansIOProtocol | None:
    """uvicorn's protocol object behind `websocket`, when it is websockets-sansio's (its
    ASGI `receive` is the protocol's bound method; middleware here wraps `send` only)."""
    owner = getattr(getattr(websocket, "_receive", None), "__self__", None)
    return owner if isinstance(owner, WebSocketsSansIOProtocol) else None


class _SocketTransport:
    """A Starlette WebSocket as the worker's `Transport`."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.closed = False
        protocol = _sansio_protocol(websocket)
        # frames are written as they are: not when an extension (permessage-deflate) is on
        self._protocol = protocol if protocol is not None and not protocol.conn.extensions else None

    async def receive(self) -> str | None:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            self.closed = True
            return None
        text = message.get("text")
        if text is None:
            data: bytes = message.get("bytes") or b""
            text = data.decode("utf-8", errors="replace")
        return str(text)

    async def send(self, text: str) -> None:
        if self.closed:
            raise SocketClosed()
        try:
            await self.websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as error:
            self.closed = True
            raise SocketClosed() from error

    def sender(self) -> Callable[[bytes], None] | None:
        """A function writing one text frame on the transport now, if the socket takes
        one without waiting (see the module docstring); None otherwise."""
        protocol = self._protocol
        if (
            protocol is None
            or self.closed
            or protocol.disconnected
            or protocol.conn.state is not State.OPEN  # not yet, or no longer, open
            or not protocol.writable.is_set()  # paused by flow control
            or protocol.transport.is_closing()
        ):
            return None
        return self._write_frame

    def _write_frame(self, payload: bytes) -> None:
        assert self._protocol is not None
        self._protocol.transport.write(text_frame_header(len(payload)) + payload)

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed or self.websocket.application_state is WebSocketState.DISCONNECTED:
            return
        self.closed = True
        with contextlib.suppress(RuntimeError, OSError):  # the client was already gone
            await self.websocket.close(code, reason)


def _truncate(reason: str) -> str:
    encoded = reason.encode()
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return encoded[: MAX_CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."


def close_frame(error: OwlatError) -> tuple[int, str]:
    """The close code and reason (cut to fit a close frame) for a worker that ended with
    `error`."""
    return websocket_close_code(error.code), _truncate(f"{error.code}: {error.message}")


async def serve_socket(service: SyncService, websocket: WebSocket) -> None:
    """Run the sync protocol on one accepted socket until it ends (counted in
    `service.open_sockets` until its close frame is sent)."""
    await websocket.accept()
    service.open_sockets += 1
    try:
        await _serve(service, _SocketTransport(websocket))
    finally:
        service.open_sockets -= 1


async def _serve(service: SyncService, transport: _SocketTransport) -> None:
    try:
        error = await SyncWorker(service, transport).run()
    except Exception:
        logger.exception("sync worker failed")
        await transport.close(1011, "InternalServerError: the sync worker failed")
        return
    if error is not None:
        code, reason = close_frame(error)
        await transport.close(code, reason)
    else:
        await transport.close(1000)


def service_routes(service: SyncService) -> list[BaseRoute]:
    """The sync WebSocket routes served by `service`."""

    async def endpoint(websocket: WebSocket) -> None:
        await serve_socket(service, websocket)

    return [
        WebSocketRoute("/api/sync", endpoint),
        WebSocketRoute("/api/{version}/sync", endpoint),
    ]
