"""The one interface every email provider implements (outbox, SES, Resend, SMTP, ...)."""

from __future__ import annotations

import dataclasses
from typing import Protocol


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


@dataclasses.dataclass(frozen=True)
class SendResult:
    message_id: str


class EmailProvider(Protocol):
    async def send(self, message: EmailMessage) -> SendResult: ...
