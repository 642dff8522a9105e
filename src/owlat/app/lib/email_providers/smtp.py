"""SMTP provider: a pool of persistent `aiosmtplib` connections to one relay.

`send` queues the message and waits for its outcome. Up to `max_connections` workers (the
provider's concurrency), started as the queue needs them, each own one connection
(implicit TLS, or STARTTLS, then AUTH when a username is set) and take message after
message from the queue, running MAIL, RCPT, DATA: a busy connection goes straight on to
the next message, as listmonk's smtppool does. aiosmtplib opens the connection (greeting,
TLS, AUTH); the transactions then run on `_smtp_wire.Wire`, which writes MAIL, RCPT and
DATA at once when the relay offers PIPELINING (RFC 2920) and matches each reply, in
order, to its command's phase. A connection survives a refusal (RSET
clears the envelope); one the server closed or timed out is dropped and the worker opens
a new one for its next message. A connection found closed at MAIL (the relay's idle
timeout) is replaced at once, without a failure: nothing was sent on it.

Classification (`classify_reply`) reads the phase, the reply code and its enhanced status
code (RFC 3463). A connection lost before the reply to the end of DATA is SERVER_ERROR:
RFC 5321 §3.8 makes the server drop the unfinished transaction, so a retry cannot send
the message twice. No answer to DATA within the timeout is UNKNOWN: the server may still
take the message, so it is not retried (the rest of RFC 1047's window is accepted).
Messages are DKIM-signed with the `dkim` signer of the From domain when they are composed
here; prepared messages (`composition.prepare`) go out as they are.

With `addresses` (a `FetchPolicy`), each connection resolves the relay's host first and
refuses it when any address it resolves to is one the policy refuses (private, loopback,
link-local: `attachments.checked_address`), then connects to that checked address, TLS
still verifying the certificate for the host name, so a changed DNS answer (rebinding)
cannot point it at an internal service. A refused relay is AUTH_FAILED: a configuration
problem, terminal, counted against the provider's health.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Literal

import aiosmtplib

from owlat.app.lib.email_providers import _smtp_wire
from owlat.app.lib.email_providers._smtp_wire import Lost, Reply, Wire
from owlat.app.lib.email_providers.types import (
    AttemptStage,
    EmailMessage,
    ErrorKind,
    ProviderError,
    SendResult,
)
from owlat.app.lib.sending.attachments import (
    AddressRefused,
    AttachmentError,
    FetchPolicy,
    checked_addresses,
)
from owlat.app.lib.sending.composition import envelope, mailbox, prepare, wire
from owlat.app.lib.sending.dkim import DkimSigner

Phase = Literal["CONNECT", "MAIL", "RCPT", "DATA"]
# (envelope sender, recipient, MIME bytes, `EmailMessage.on_attempt`, the future its
# sender waits on)
_Job = tuple[str, str, bytes, "Callable[[AttemptStage], None] | None", "asyncio.Future[None]"]
_ENHANCED = re.compile(r"\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_TLS_WORDS = re.compile(r"STARTTLS|SSL|TLS|CERTIFICATE")
_RATE_WORDS = re.compile(
    r"rate|too many|too quickly|throttl|slow down|try again later", re.IGNORECASE
)


@dataclasses.dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    # "starttls" (required), "tls" (implicit, usually port 465) or "none" (plain text)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password: str = ""
    # Connections kept open to the relay, and so messages in flight at once.
    max_connections: int = 4
    # Seconds to wait for the connection and for each reply.
    timeout: float = 30.0
    # PEM file of the certificate authorities to trust instead of the system's.
    ca_file: str = ""
    # Name given in EHLO; empty: this machine's fully qualified name.
    local_hostname: str = ""
    # Where the relay may be (module docstring); None: anywhere, as resolved.
    addresses: FetchPolicy | None = None


class SmtpProvider:
    name = "smtp"
    # `EmailMessage.on_attempt` is called by the connection that takes the message, right
    # before its MAIL ("mail") and right before the write that ends its DATA ("end"): a
    # message still waiting for a connection was not attempted.
    calls_on_attempt = True

    def __init__(
        self, settings: SmtpSettings, *, dkim: Mapping[str, DkimSigner] | None = None
    ) -> None:
        if settings.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.settings = settings
        self._dkim = {domain.lower(): signer for domain, signer in (dkim or {}).items()}
        self._jobs: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._workers: set[asyncio.Task[None]] = set()
        self._waiting = 0  # workers waiting for a job
        self._tls = None
        if settings.security != "none":
            self._tls = ssl.create_default_context(cafile=settings.ca_file or None)

    async def send(self, message: EmailMessage) -> SendResult:
        if message.raw is None:
            domain = mailbox(message.from_address, "From").domain.lower()
            message = prepare(message, dkim=self._dkim.get(domain))
        message_id, raw = wire(message)
        sender, recipient = envelope(message)
        await self.send_raw(sender, recipient, raw, message.on_attempt)
        return SendResult(message_id)

    async def send_raw(
        self,
        sender: str,
        recipient: str,
        raw: bytes,
        on_attempt: Callable[[AttemptStage], None] | None = None,
    ) -> None:
        """Send composed bytes: one MAIL/RCPT/DATA transaction on a pooled connection
        (`on_attempt` called right before its MAIL and its end of DATA)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._jobs.put_nowait((sender, recipient, raw, on_attempt, done))
        if self._waiting == 0 and len(self._workers) < self.settings.max_connections:
            worker = asyncio.create_task(self._work())
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        await done

    async def check(self) -> str:
        """Connect (the relay's addresses checked), greet, TLS and AUTH as a delivery
        does, then QUIT."""
        s = self.settings
        await (await self._connect()).quit()
        security = {"tls": "TLS", "starttls": "STARTTLS"}.get(s.security, "no TLS")
        signed_in = f", signed in as {s.username}" if s.username else ", no sign-in"
        return f"{s.host}:{s.port} accepted the connection ({security}{signed_in})"

    async def close(self) -> None:
        """Finish the queued messages, then QUIT every connection."""
        workers = list(self._workers)
        for _ in workers:
            self._jobs.put_nowait(None)
        await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self) -> None:
        """One connection's loop: take the next message, send it, answer its sender."""
        connection: Wire | None = None
        done: asyncio.Future[None] | None = None
        try:
            while True:
                self._waiting += 1
                try:
                    job = await self._jobs.get()
                finally:
                    self._waiting -= 1
                if job is None:
                    break
                sender, recipient, raw, on_attempt, done = job
                if done.done():
                    continue  # its sender gave up waiting
                try:
                    connection, error = await self._run(
                        connection, sender, recipient, raw, on_attempt
                    )
                except Exception as unexpected:  # never leave a sender waiting
                    if connection is not None:
                        connection.close()
                    connection = None
                    error = self._error("MAIL", repr(unexpected), ErrorKind.UNKNOWN)
                if done.done():
                    continue
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)
            if connection is not None:
                await connection.quit()
        finally:
            if done is not None and not done.done():
                stopped = "the connection's worker stopped during the transaction"
                done.set_exception(self._error("DATA", stopped, ErrorKind.UNKNOWN))
            if connection is not None:
                connection.close()

    async def _run(
        self,
        connection: Wire | None,
        sender: str,
        recipient: str,
        raw: bytes,
        on_attempt: Callable[[AttemptStage], None] | None = None,
    ) -> tuple[Wire | None, ProviderError | None]:
        """Send on `connection` (a new one when None, or when it was found closed before
        anything was sent); returns the connection to go on with, and the failure."""
        fresh = connection is None
        try:
            if connection is None:
                connection = await self._connect()
            if on_attempt is not None:
                on_attempt("mail")
            await self._transaction(connection, sender, recipient, raw, on_attempt)
        except _StaleConnection:
            if fresh:
                return None, self._error("MAIL", "connection lost before MAIL was answered")
            return await self._run(None, sender, recipient, raw, on_attempt)
        except ProviderError as error:
            alive = connection is not None and connection.is_connected
            return (connection if alive else None), error
        return connection, None

    async def _connect(self) -> Wire:
        """A connection greeted, secured and signed in (by aiosmtplib), as a `Wire`."""
        s = self.settings
        sock = None if s.addresses is None else await self._checked_socket(s.addresses)
        connection = aiosmtplib.SMTP(
            hostname=s.host,
            port=None if sock is not None else s.port,
            sock=sock,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            username=s.username or None,
            password=s.password or None,
            timeout=s.timeout,
            local_hostname=s.local_hostname or None,
            tls_context=self._tls,
        )
        try:
            await connection.connect()
            if connection.is_ehlo_or_helo_needed:  # no TLS nor AUTH: not greeted yet
                try:
                    await connection.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await connection.helo()
        except aiosmtplib.SMTPAuthenticationError as error:
            connection.close()
            refused = f"authentication refused: {error.code} {error.message}"
            raise self._error("CONNECT", refused, ErrorKind.AUTH_FAILED) from None
        except aiosmtplib.SMTPResponseException as error:
            connection.close()
            raise classify_reply("CONNECT", error.code, error.message) from None
        except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as error:
            connection.close()
            raise self._connect_error(error) from None
        try:
            return Wire.take_over(connection, s.timeout)
        except Lost as error:
            raise self._connect_error(error) from None

    async def _transaction(
        self,
        wire: Wire,
        sender: str,
        recipient: str,
        raw: bytes,
        on_attempt: Callable[[AttemptStage], None] | None = None,
    ) -> None:
        """MAIL, RCPT, DATA and the content on `wire`: the three commands written at once
        when the server pipelines, else each after the reply to the one before; every
        reply is read, in order, and matched to its command's phase (`on_attempt("end")`
        right before the content's write, which ends the DATA)."""
        commands: list[tuple[Phase, bytes, tuple[int, ...]]] = [
            ("MAIL", _smtp_wire.envelope_command(b"MAIL FROM:", sender), (250,)),
            ("RCPT", _smtp_wire.envelope_command(b"RCPT TO:", recipient), (250, 251)),
            ("DATA", b"DATA\r\n", (354,)),
        ]
        phase: Phase = "MAIL"
        refusal: tuple[Phase, Reply] | None = None
        try:
            if wire.pipelining:
                wire.send(b"".join(command for _, command, _ in commands))
            for phase, command, expected in commands:
                if not wire.pipelining:
                    wire.send(command)
                answer = await wire.reply()
                if refusal is None and answer.code not in expected:
                    refusal = (phase, answer)
                    if not wire.pipelining:
                        break
            if refusal is not None:
                if answer.code == 354:  # a server that took DATA all the same: end it empty
                    await wire.command(b".\r\n")
                raise classify_reply(refusal[0], *refusal[1])
            data = _smtp_wire.content(raw)
            if on_attempt is not None:
                on_attempt("end")
            wire.send(data)
            answer = await wire.reply()
            if answer.code != 250:
                refusal = (phase, answer)
                raise classify_reply(phase, *answer)
        except ProviderError:
            assert refusal is not None
            await _reset(wire, keep=refusal[1].code != 421)
            raise
        except Lost as error:
            wire.close()
            if phase == "MAIL":
                raise _StaleConnection from error
            lost = f"connection lost during {phase}, before the server accepted the message"
            raise self._error(phase, lost) from None
        except TimeoutError:
            wire.close()
            timeout = self.settings.timeout
            if phase == "DATA":
                unknown = (
                    f"no answer to DATA within {timeout:g} s: the server may have accepted "
                    "the message, so it is not retried"
                )
                raise self._error(phase, unknown, ErrorKind.UNKNOWN) from None
            raise self._error(phase, f"no answer to {phase} within {timeout:g} s") from None

    async def _checked_socket(self, policy: FetchPolicy) -> socket.socket:
        """A socket connected to the first address of the relay that answers, once
        `policy` allowed every address it resolves to (as `localhost` may be ::1 and
        127.0.0.1, with the relay on one of them)."""
        s = self.settings
        try:
            addresses = await checked_addresses(s.host, s.port, policy)
        except AddressRefused as error:
            refused = f"{error} (an SMTP relay must be on a public address)"
            raise self._error("CONNECT", refused, ErrorKind.AUTH_FAILED) from None
        except AttachmentError as error:
            raise self._error("CONNECT", str(error)) from None
        failure: BaseException = OSError(f"{s.host} has no address")
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                async with asyncio.timeout(s.timeout):
                    await asyncio.get_running_loop().sock_connect(sock, (address, s.port))
            except (OSError, TimeoutError) as error:
                sock.close()
                failure = error
                continue
            return sock
        raise self._connect_error(failure)

    def _connect_error(self, error: BaseException) -> ProviderError:
        where = f"{self.settings.host}:{self.settings.port}"
        if isinstance(error, ssl.SSLError) or _TLS_WORDS.search(str(error)):
            tls = f"TLS with {where} failed: {error}"
            return self._error("CONNECT", tls, ErrorKind.AUTH_FAILED)
        if isinstance(error, aiosmtplib.SMTPException) and "auth" in str(error).lower():
            return self._error("CONNECT", f"{where}: {error}", ErrorKind.AUTH_FAILED)
        return self._error("CONNECT", f"cannot connect to {where}: {error}")

    def _error(
        self, phase: Phase, text: str, kind: ErrorKind = ErrorKind.SERVER_ERROR
    ) -> ProviderError:
        return ProviderError(kind, f"{phase}: {text}", provider=self.name)


async def _reset(wire: Wire, *, keep: bool) -> None:
    """RSET after a refusal, so the connection serves the next message; else close it."""
    if keep:
        try:
            if (await wire.command(b"RSET\r\n")).code == 250:
                return
        except (Lost, TimeoutError):
            pass
    wire.close()


class _StaleConnection(Exception):
    """The connection was already closed when MAIL was sent: nothing was transmitted."""


def refused_at_recipient(text: str) -> bool:
    """Whether a refusal (`str` of its `ProviderError`) was the answer to RCPT: the
    receiving side's, not the relay's (`campaigns/throttle.py` backs off that domain)."""
    return text.startswith(f"{SmtpProvider.name}: RCPT:")


def classify_reply(phase: Phase, code: int, text: str) -> ProviderError:
    """The error of an SMTP refusal `code text` (RFC 5321 codes, RFC 3463 enhanced codes)
    answered to `phase`."""
    enhanced = _ENHANCED.match(text)
    subject = (enhanced.group(2), enhanced.group(3)) if enhanced else ("", "")
    if code in (530, 534, 535, 538) or (subject[0] == "7" and subject[1] == "8"):
        kind = ErrorKind.AUTH_FAILED
    elif 400 <= code < 500:
        rate = code == 452 or subject == ("7", "28") or _RATE_WORDS.search(text)
        kind = ErrorKind.RATE_LIMIT if rate else ErrorKind.SERVER_ERROR
    elif phase == "MAIL":
        kind = ErrorKind.CONTENT_REJECTED if code == 552 else ErrorKind.INVALID_SENDER
    elif phase == "RCPT":
        policy = subject[0] == "7"
        kind = ErrorKind.CONTENT_REJECTED if policy else ErrorKind.INVALID_RECIPIENT
    elif phase == "DATA":
        kind = ErrorKind.CONTENT_REJECTED
    else:
        kind = ErrorKind.UNKNOWN
    message = f"{phase}: {code} {' '.join(text.split())}"
    return ProviderError(kind, message, provider=SmtpProvider.name)
