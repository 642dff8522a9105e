"""Real servers for the provider tests, on 127.0.0.1 in the test's own event loop.

`smtp_server(sink, ...)` serves aiosmtpd on a free port: plain, STARTTLS with AUTH, or
implicit TLS. The `Sink` handler records each accepted message and plays the faults
scripted per recipient, one per attempt, in order:

    "RCPT <reply>" / "DATA <reply>"   answer that reply instead of accepting
    "DROP"                            close the connection after the first line of DATA
    "STALL"                           answer the end of DATA only after `stall` seconds

and greets its next `refuse_connections` connections with 421 (then closes them). Its
EHLO offers PIPELINING unless `pipelining` is off; `reads` keeps what each read brought.

`self_signed(folder)` writes a certificate for 127.0.0.1 and its key. `FakeResend` is a
Starlette app with Resend's `POST /emails`, checking the documented request shape.
`https_server(app, folder)` serves an ASGI app over TLS on 127.0.0.1 (that certificate).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import datetime
import ipaddress
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp


@dataclasses.dataclass
class Sink:
    faults: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    stall: float = 2.0
    delay: float = 0.0  # seconds each accepted message takes (a slow relay)
    received: list[Envelope] = dataclasses.field(default_factory=list)
    connections: int = 0
    authenticated: list[str] = dataclasses.field(default_factory=list)
    servers: list[SMTP] = dataclasses.field(default_factory=list)
    # connections still to be greeted with 421 (and closed) instead of 220
    refuse_connections: int = 0
    # whether EHLO offers PIPELINING (RFC 2920), as real relays do
    pipelining: bool = True
    # what each read from a client brought, in order (pipelined commands come together)
    reads: list[bytes] = dataclasses.field(default_factory=list)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    def recipients(self) -> list[str]:
        return [address for envelope in self.received for address in envelope.rcpt_tos]

    def next_fault(self, recipient: str, stage: str) -> str | None:
        queue = self.faults.get(recipient)
        if queue and queue[0].split(" ", 1)[0] == stage:
            fault = queue.pop(0)
            return fault.partition(" ")[2] or fault
        return None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        reply = self.next_fault(address, "RCPT")
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipient = envelope.rcpt_tos[0]
        reply = self.next_fault(recipient, "DATA")
        if reply is not None:
            return reply
        if self.next_fault(recipient, "STALL") is not None:
            await asyncio.sleep(self.stall)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.received.append(envelope)
        return "250 2.0.0 Ok: queued"

    def close_connections(self) -> None:
        """Close every open connection from the server side (an idle timeout)."""
        for server in self.servers:
            if server.transport is not None:
                server.transport.close()


class _FaultySMTP(SMTP):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sink: Sink = self.event_handler
        if self.transport is None:
            sink.connections += 1
            sink.servers.append(self)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.event_handler.reads.append(data)
        super().data_received(data)

    async def _handle_client(self) -> None:
        sink: Sink = self.event_handler
        if sink.refuse_connections > 0:
            sink.refuse_connections -= 1
            await self.push("421 4.3.2 Service not available, closing transmission channel")
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()

    async def smtp_DATA(self, arg: str) -> None:
        sink: Sink = self.event_handler
        envelope = self.envelope
        recipients = envelope.rcpt_tos if envelope is not None else []
        if recipients and sink.next_fault(recipients[0], "DROP") is not None:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readuntil(b"\r\n")
            assert self.transport is not None
            self.transport.close()
            return
        await super().smtp_DATA(arg)


@contextlib.asynccontextmanager
async def smtp_server(
    sink: Sink,
    *,
    tls: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    password: str | None = None,
) -> AsyncIterator[int]:
    """Serve `sink` until the block ends; yields the port. With `tls`: STARTTLS required
    (or TLS from the first byte with `implicit_tls`); with `password`: AUTH required (user
    "owlat"), only over TLS."""
    loop = asyncio.get_running_loop()

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == b"owlat"
        ok = ok and data.password == (password or "").encode()
        if ok:
            sink.authenticated.append(mechanism)
        return AuthResult(success=ok, handled=False)

    def protocol() -> SMTP:
        return _FaultySMTP(
            sink,
            loop=loop,
            hostname="sink.test",
            tls_context=None if implicit_tls else tls,
            require_starttls=tls is not None and not implicit_tls,
            auth_required=password is not None,
            authenticator=authenticate if password is not None else None,
        )

    server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=tls if implicit_tls else None)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        sink.close_connections()
        server.close()
        await server.wait_closed()


def self_signed(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 (its PEM file: the CA file a client trusts) and the
    server's TLS context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return cert_file, context


# -- Resend ----------------------------------------------------------------------------------

_FIELDS = {"from", "to", "subject", "text", "html", "reply_to", "headers", "attachments"}


@dataclasses.dataclass
class FakeResend:
    """Resend's `POST /emails`: checks the auth header, the JSON shape and the
    Idempotency-Key (a repeated key answers the first id and sends nothing). `answers`
    maps a recipient to a scripted answer per attempt: (status, JSON body, headers)
    or "SLOW" (answer after `slow` seconds)."""

    api_key: str = "re_test_key"
    # a key allowed to send only: `GET /domains` refuses it with `restricted_api_key`
    sending_key: str = "re_sending_only"
    domains: list[dict[str, str]] = dataclasses.field(default_factory=list)
    answers: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    slow: float = 2.0
    sent: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    requests: int = 0
    _by_key: dict[str, str] = dataclasses.field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/emails", self._emails, methods=["POST"]),
                Route("/domains", self._domains, methods=["GET"]),
            ]
        )

    async def _domains(self, request: Request) -> JSONResponse:
        """`GET /domains`: the account's domains, to a full-access key only."""
        authorization = request.headers.get("authorization")
        if authorization == f"Bearer {self.sending_key}":
            return _error(
                401, "restricted_api_key", "This API key is restricted to only send emails"
            )
        if authorization != f"Bearer {self.api_key}":
            return _error(403, "invalid_api_key", "API key is invalid")
        return JSONResponse({"data": self.domains})

    async def _emails(self, request: Request) -> JSONResponse:
        self.requests += 1
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(403, "invalid_api_key", "API key is invalid")
        if request.headers.get("content-type") != "application/json":
            return _error(422, "validation_error", "body must be JSON")
        body = await request.json()
        problem = _shape_problem(body)
        if problem:
            return _error(422, "validation_error", problem)
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 256:
            return _error(400, "invalid_idempotency_key", "The key must be between 1-256 chars.")
        script = self.answers.get(body["to"][0])
        if script:
            answer = script.pop(0)
            if answer == "SLOW":
                await asyncio.sleep(self.slow)
            else:
                status, payload, headers = answer
                return JSONResponse(payload, status, headers=headers)
        if key is not None and key in self._by_key:
            return JSONResponse({"id": self._by_key[key]})
        email_id = str(uuid.uuid4())
        if key is not None:
            self._by_key[key] = email_id
        self.sent.append({**body, "id": email_id, "idempotency_key": key})
        return JSONResponse({"id": email_id})


def _error(status: int, name: str, message: str) -> JSONResponse:
    return JSONResponse({"statusCode": status, "name": name, "message": message}, status)


def _shape_problem(body: Any) -> str | None:
    """What is wrong with a `POST /emails` body per Resend's documentation, if anything."""
    if not isinstance(body, dict):
        return "body must be an object"
    if unknown := set(body) - _FIELDS:
        return f"unknown fields {sorted(unknown)}"
    checks: list[tuple[str, Callable[[Any], bool]]] = [
        ("from", lambda v: isinstance(v, str) and "@" in v),
        (
            "to",
            lambda v: (
                isinstance(v, list) and 1 <= len(v) <= 50 and all(isinstance(a, str) for a in v)
            ),
        ),
        ("subject", lambda v: isinstance(v, str)),
    ]
    for field, valid in checks:
        if not valid(body.get(field)):
            return f"Invalid `{field}` field"
    if not isinstance(body.get("text", ""), str) or not isinstance(body.get("html", ""), str):
        return "`text` and `html` must be strings"
    reply_to = body.get("reply_to", [])
    if not isinstance(reply_to, list) or not all(isinstance(a, str) for a in reply_to):
        return "`reply_to` must be a list of strings"
    headers = body.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        return "`headers` must map names to strings"
    for attachment in body.get("attachments", []):
        if set(attachment) - {"filename", "content", "content_type"}:
            return "unknown attachment fields"
        try:
            base64.b64decode(attachment["content"], validate=True)
        except (KeyError, binascii.Error):
            return "attachment content must be base64"
    return None


# -- HTTPS -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def https_server(app: ASGIApp, folder: Path) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    """Serve `app` over TLS on a free 127.0.0.1 port until the block ends; yields its base
    URL (`https://127.0.0.1:<port>`) and a client context that trusts its certificate."""
    import uvicorn

    from tests.e2e.conftest import _InProcessServer

    cert_file, _ = self_signed(folder)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_config=None,
        access_log=False,
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(folder / "key.pem"),
    )
    server = _InProcessServer(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"https://127.0.0.1:{port}", ssl.create_default_context(cafile=str(cert_file))
    finally:
        server.should_exit = True
        await serving
