"""What a provider tells about a message it accepted, whatever the provider."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Literal

EventKind = Literal["delivered", "bounced", "complained"]


@dataclasses.dataclass(frozen=True)
class ProviderEvent:
    kind: EventKind
    message_id: str  # the provider's id of the message (`providerMessageId` of the send)
    at: float  # epoch ms
    bounce_type: Literal["hard", "soft"] | None = None
    message: str = ""  # a bounce's diagnostic


class Refused(Exception):
    """A webhook request refused: the HTTP status and the reason answered."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def epoch_ms(text: object, default: float) -> float:
    """An ISO 8601 time as epoch ms (`default` when absent or unreadable)."""
    if not isinstance(text, str):
        return default
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return default
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp() * 1000
