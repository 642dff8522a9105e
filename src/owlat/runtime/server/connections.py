"""What one client may hold of a server: connections, time to send a request, its address.

uvicorn closes a kept-alive connection that stays idle (`timeout_keep_alive`), and nothing
else: a client that connects and sends nothing, or its headers or body a byte at a time,
holds a connection (and a task) for as long as it likes; a few hundred such clients exhaust
the process. `server_config` gives uvicorn these rules instead, on both ports:

* **Connections per address**: at most `per_address` open connections (HTTP and WebSocket)
  per peer address; one more is answered `503` and closed at once. Peers that are trusted
  proxies are exempt: a proxy carries many clients, cap them there.
* **Headers**: the request line and headers must be complete `header_timeout` seconds after
  the connection opened (or after the first byte of the next request on a kept-alive
  connection); otherwise the connection is closed, with `408` when a request had begun.
* **Body**: the body must be complete `body_timeout` seconds after the headers, plus one
  second per `MIN_BODY_RATE` bytes received (Apache's `mod_reqtimeout body=20,MinRate=500`),
  so a large upload at a fair pace is never cut while a trickle is; otherwise the connection
  is closed (the handler sees the client disconnect). Time during which the server itself
  stopped reading (the handler has not taken the body yet) does not count.
* **Forwarded headers** (`X-Forwarded-For`, `X-Forwarded-Proto`) are believed only from
  `trusted_proxies` (uvicorn's `ProxyHeadersMiddleware`); by default from nobody, loopback
  included, so a local proxy cannot lend its address to a client. Per-address limits then
  key on the real peer, or on the forwarded client when the peer is a trusted proxy.

The rules live in subclasses of uvicorn's httptools protocol (its parser callbacks
`on_message_begin`, `on_headers_complete`, `on_body`, `on_message_complete`) and of its
websockets-sansio protocol, which inherits the connection's slot when a request upgrades.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from typing import Any, ClassVar, Final

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

logger = logging.getLogger("owlat.server")

MIN_BODY_RATE: Final = 500  # bytes per second a body must average after its grace time

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """The rules of the module docstring (seconds, connections; `per_address=0`: no cap)."""

    header_timeout: float = 10.0
    body_timeout: float = 20.0
    per_address: int = 100
    # Addresses or networks ("10.0.0.0/8", "::1") whose forwarded headers are believed.
    trusted_proxies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.header_timeout <= 0 or self.body_timeout <= 0 or self.per_address < 0:
            raise ValueError(f"connection limits must be positive: {self}")
        for entry in self.trusted_proxies:
            ipaddress.ip_network(entry, strict=False)  # ValueError names the entry


def server_config(app: Any, limits: ConnectionLimits, **options: Any) -> uvicorn.Config:
    """uvicorn's `Config` for `app` under `limits`; `options` are uvicorn's own (host, port,
    lifespan, log_level, ...)."""
    http, ws = guarded_protocols(limits)
    return uvicorn.Config(
        app,
        http=http,
        ws=ws,
        # Sync frames are small and often pushed to many sockets: permessage-deflate would
        # cost ~10-25 µs per push and ~40 KiB per idle socket (BENCHMARKS.md, bench_sync.py).
        ws_per_message_deflate=False,
        proxy_headers=bool(limits.trusted_proxies),
        forwarded_allow_ips=list(limits.trusted_proxies),
        **options,
    )


def guarded_protocols(
    limits: ConnectionLimits,
) -> tuple[type[HttpToolsProtocol], type[WebSocketsSansIOProtocol]]:
    """The HTTP and WebSocket protocol classes of one server, sharing its connection count."""
    slots = _Slots(limits)

    class Http(_GuardedHttp):
        pass

    class WebSocket(_GuardedWebSocket):
        pass

    Http.limits = limits
    Http.slots = WebSocket.slots = slots
    return Http, WebSocket


class _Slots:
    """Open connections per peer address; a connection holds its slot until it is lost."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.per_address = limits.per_address
        self.trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in limits.trusted_proxies
        )
        self.open: dict[str, int] = {}
        self.holders: dict[asyncio.BaseTransport, str] = {}
        self.refusing: set[str] = set()  # addresses at the cap, warned about once

    def take(self, transport: asyncio.BaseTransport, client: tuple[str, int] | None) -> bool:
        """Whether a new connection from `client` may stay open (then it holds a slot)."""
        if not self.per_address or client is None or self._is_trusted(client[0]):
            return True
        address = client[0]
        count = self.open.get(address, 0)
        if count >= self.per_address:
            if address not in self.refusing:
                self.refusing.add(address)
                logger.warning(
                    "Refusing connections from %s: %d open, the per-address cap", address, count
                )
            return False
        self.open[address] = count + 1
        self.holders[transport] = address
        return True

    def give_back(self, transport: asyncio.BaseTransport) -> None:
        address = self.holders.pop(transport, None)
        if address is None:
            return
        count = self.open[address] - 1
        if count:
            self.open[address] = count
        else:
            del self.open[address]
        self.refusing.discard(address)

    def _is_trusted(self, host: str) -> bool:
        if not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.trusted)


def _plain_answer(status: str, text: str) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(text)}\r\nconnection: close\r\n\r\n{text}"
    ).encode()


_TOO_MANY = _plain_answer("503 Service Unavailable", "Too many connections from this address")
_TOO_SLOW = _plain_answer("408 Request Timeout", "The request headers took too long")


class _GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with the cap and the header and body deadlines."""

    limits: ClassVar[ConnectionLimits]
    slots: ClassVar[_Slots]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._request_begun = False
        self._body_since = 0.0
        self._body_received = 0

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.slots.take(transport, self.client):
            transport.write(_TOO_MANY)
            transport.close()
            return
        self._arm(self.limits.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.slots.give_back(self.transport)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True
        if self._timer is None:  # a kept-alive connection's next request
            self._arm(self.limits.header_timeout, self._headers_late)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._request_begun = False
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._body_since, self._body_received = self.loop.time(), 0
            self._arm(self.limits.body_timeout, self._body_late)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._body_received += len(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _headers_late(self) -> None:
        self._timer = None
        if self._request_begun and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(_TOO_SLOW)
        self.transport.close()

    def _body_late(self) -> None:
        self._timer = None
        now = self.loop.time()
        if self.flow.read_paused:  # the server is not reading: the client is not late
            self._body_since, self._body_received = now, 0
            self._arm(self.limits.body_timeout, self._body_late)
            return
        deadline = self._body_since + self.limits.body_timeout
        deadline += self._body_received / MIN_BODY_RATE
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._body_late)
            return
        self.transport.close()


class _GuardedWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, giving back the slot of the upgraded connection."""

    slots: ClassVar[_Slots]

    def connection_lost(self, exc: Exception | None) -> None:
        self.slots.give_back(self.transport)
        super().connection_lost(exc)
