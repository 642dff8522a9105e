"""The campaign status machine (reference §11.1, plus `paused`), no I/O.

    draft ──▶ scheduled ──▶ sending ◀──▶ paused
      │  ◀──────┘  │          │  │        │
      └────────────┼──────────┘  ▼        │
                   └─▶ cancelled ◀────────┘        sending ──▶ sent

    from        legal to
    draft       scheduled, sending
    scheduled   draft, sending, cancelled
    sending     paused, sent, cancelled
    paused      sending, cancelled
    sent, cancelled: terminal

Upstream has no `paused` and lets `sending` fall back to `draft` (a content scan Owlat
does not run); a paused campaign keeps its walk position and its queued sends, so a
resume neither skips nor repeats anyone.
"""

from __future__ import annotations

import enum

from owlat.app.lib.errors import AppError, invalid


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


EDGES: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.DRAFT: frozenset({CampaignStatus.SCHEDULED, CampaignStatus.SENDING}),
    CampaignStatus.SCHEDULED: frozenset(
        {CampaignStatus.DRAFT, CampaignStatus.SENDING, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.SENDING: frozenset(
        {CampaignStatus.PAUSED, CampaignStatus.SENT, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.PAUSED: frozenset({CampaignStatus.SENDING, CampaignStatus.CANCELLED}),
    CampaignStatus.SENT: frozenset(),
    CampaignStatus.CANCELLED: frozenset(),
}


def check_move(current: str, to: CampaignStatus) -> None:
    """Refuse a move the table does not allow, naming both states."""
    if to not in EDGES[CampaignStatus(current)]:
        raise invalid_state(f"A {current} campaign cannot become {to}")


def invalid_state(message: str) -> AppError:
    return invalid("INVALID_STATE", message)
