"""The one interface every email provider implements (outbox, SMTP, SES, Resend), and the
classified error every provider raises.

    ProviderError(kind, message, retry_after)
      kind RATE_LIMIT, SERVER_ERROR      the provider certainly did not take the message
                                         (or dedupes a retry): retried with back-off
      kind INVALID_RECIPIENT, INVALID_SENDER, AUTH_FAILED, CONTENT_REJECTED
                                         terminal: retrying cannot help
      kind UNKNOWN                       terminal, including "no answer in time": the
                                         provider may have taken the message, and a retry
                                         could send it twice
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Literal, Protocol

# The stages `EmailMessage.on_attempt` is called at (`sending/journal.py`): "handed",
# right before a provider that cannot tell more is handed the message; an SMTP
# provider's "mail", right before MAIL on the connection that carries it, and "end",
# right before the write that carries the end of its DATA (all a relay needs to take it).
AttemptStage = Literal["handed", "mail", "end"]


@dataclasses.dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclasses.dataclass(frozen=True)
class EmailMessage:
    to: str
    subject: str
    text: str
    html: str | None = None
    from_address: str = "Owlat <no-reply@owlat.local>"
    # Identifies one (recipient, message): a provider must not send the same key twice.
    idempotency_key: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    reply_to: str | None = None
    attachments: tuple[Attachment, ...] = ()
    # Set by `sending.composition.prepare`: the Message-ID (without <>) and the composed
    # (possibly DKIM-signed) MIME bytes, which providers that speak MIME send as they are.
    message_id: str | None = None
    raw: bytes | None = None
    # Called at each `AttemptStage` of this message: the attempt journal
    # (`sending/journal.py`) writes down how far this claim may have reached the relay.
    on_attempt: Callable[[AttemptStage], None] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )


@dataclasses.dataclass(frozen=True)
class SendResult:
    message_id: str


class EmailProvider(Protocol):
    async def send(self, message: EmailMessage) -> SendResult: ...


class CheckableProvider(EmailProvider, Protocol):
    """A provider as configured (`configured.build_provider`), which can also be tested."""

    async def check(self) -> str:
        """Reach the provider and prove the credentials as a delivery would, sending
        nothing; what was checked (a `ProviderError` says what failed)."""
        ...


class ErrorKind(enum.Enum):
    RATE_LIMIT = "RATE_LIMIT"
    SERVER_ERROR = "SERVER_ERROR"
    INVALID_RECIPIENT = "INVALID_RECIPIENT"
    INVALID_SENDER = "INVALID_SENDER"
    AUTH_FAILED = "AUTH_FAILED"
    CONTENT_REJECTED = "CONTENT_REJECTED"
    UNKNOWN = "UNKNOWN"

    @property
    def retryable(self) -> bool:
        return self in (ErrorKind.RATE_LIMIT, ErrorKind.SERVER_ERROR)

    @property
    def provider_fault(self) -> bool:
        """Whether the failure speaks about the provider (counts against its health)
        rather than about this one message."""
        return self in (ErrorKind.RATE_LIMIT, ErrorKind.SERVER_ERROR, ErrorKind.AUTH_FAILED)


class ProviderError(Exception):
    """A provider refused or failed to take a message; `kind` says whether to retry,
    `retry_after` (seconds) is the provider's own hint when it gave one."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        retry_after: float | None = None,
        *,
        provider: str = "",
    ) -> None:
        super().__init__(f"{provider}: {message}" if provider else message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.provider = provider

    @property
    def retryable(self) -> bool:
        return self.kind.retryable

    def __repr__(self) -> str:
        return f"ProviderError({self.kind.name}, {str(self)!r}, retry_after={self.retry_after})"
