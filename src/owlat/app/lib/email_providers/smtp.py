"""SMTP provider: a pool of persistent `aiosmtplib` connections to one relay.

At most `max_connections` messages are in flight (the provider's concurrency); each takes
an idle connection or opens one (implicit TLS, or STARTTLS, then AUTH when a username is
set) and runs MAIL, RCPT, DATA. A connection goes back to the pool after a success or a
refusal it survives (RSET clears the envelope); one the server closed or timed out is
dropped, and the next message opens a new one. A pooled connection found dead at MAIL
(the relay's idle timeout) is replaced once without a failure: nothing was sent on it.

Classification (`classify_reply`) reads the phase, the reply code and its enhanced status
code (RFC 3463). A connection lost before the reply to the end of DATA is SERVER_ERROR:
RFC 5321 §3.8 makes the server drop the unfinished transaction, so a retry cannot send
the message twice. No answer to DATA within the timeout is UNKNOWN: the server may still
take the message, so it is not retried (the rest of RFC 1047's window is accepted).
Messages are DKIM-signed with the `dkim` signer of the From domain when they are composed
here; prepared messages (`composition.prepare`) go out as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import ssl
from collections.abc import Mapping
from typing import Literal

import aiosmtplib

from owlat.app.lib.email_providers.types import (
    EmailMessage,
    ErrorKind,
    ProviderError,
    SendResult,
)
from owlat.app.lib.sending.composition import envelope, mailbox, wire
from owlat.app.lib.sending.dkim import DkimSigner

Phase = Literal["CONNECT", "MAIL", "RCPT", "DATA"]
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


class SmtpProvider:
    name = "smtp"

    def __init__(
        self, settings: SmtpSettings, *, dkim: Mapping[str, DkimSigner] | None = None
    ) -> None:
        if settings.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.settings = settings
        self._dkim = {domain.lower(): signer for domain, signer in (dkim or {}).items()}
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._idle: list[aiosmtplib.SMTP] = []
        self._tls = None
        if settings.security != "none":
            self._tls = ssl.create_default_context(cafile=settings.ca_file or None)

    async def send(self, message: EmailMessage) -> SendResult:
        signer = self._dkim.get(mailbox(message.from_address, "From").domain.lower())
        message_id, raw = wire(message, dkim=signer)
        sender, recipient = envelope(message)
        await self.send_raw(sender, recipient, raw)
        return SendResult(message_id)

    async def send_raw(self, sender: str, recipient: str, raw: bytes) -> None:
        """Send composed bytes: one MAIL/RCPT/DATA transaction on a pooled connection."""
        async with self._slots:
            if self._idle:
                connection = self._idle.pop()
                try:
                    await self._transaction(connection, sender, recipient, raw)
                except _StaleConnection:
                    pass  # closed while idle: nothing was sent, open a new one
                else:
                    self._idle.append(connection)
                    return
            connection = await self._connect()
            try:
                await self._transaction(connection, sender, recipient, raw)
            except _StaleConnection:
                raise self._error("MAIL", "connection lost before MAIL was answered") from None
            self._idle.append(connection)

    async def close(self) -> None:
        """QUIT every idle connection (best effort)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            try:
                await connection.quit()
            except (aiosmtplib.SMTPException, OSError):
                connection.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        connection = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
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
        return connection

    async def _transaction(
        self, connection: aiosmtplib.SMTP, sender: str, recipient: str, raw: bytes
    ) -> None:
        phase: Phase = "MAIL"
        try:
            await connection.mail(sender)
            phase = "RCPT"
            await connection.rcpt(recipient)
            phase = "DATA"
            await connection.data(raw)
        except aiosmtplib.SMTPResponseException as error:
            error_class = classify_reply(phase, error.code, error.message)
            await self._reset_or_drop(connection, keep=error.code != 421)
            raise error_class from None
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as error:
            connection.close()
            if phase == "MAIL":
                raise _StaleConnection from error
            lost = f"connection lost during {phase}, before the server accepted the message"
            raise self._error(phase, lost) from None
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            connection.close()
            timeout = self.settings.timeout
            if phase == "DATA":
                unknown = (
                    f"no answer to DATA within {timeout:g} s: the server may have accepted "
                    "the message, so it is not retried"
                )
                raise self._error(phase, unknown, ErrorKind.UNKNOWN) from None
            raise self._error(phase, f"no answer to {phase} within {timeout:g} s") from None

    async def _reset_or_drop(self, connection: aiosmtplib.SMTP, *, keep: bool) -> None:
        if keep:
            try:
                await connection.rset()
                self._idle.append(connection)
                return
            except (aiosmtplib.SMTPException, OSError):
                pass
        connection.close()

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


class _StaleConnection(Exception):
    """The connection was already closed when MAIL was sent: nothing was transmitted."""


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
