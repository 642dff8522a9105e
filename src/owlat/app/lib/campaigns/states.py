"""The campaign status machine (reference §11.1, plus `paused`), no I/O.

    from            legal to
    draft           scheduled, sending
    scheduled       draft, sending, cancelled
    sending         sent, draft, pending_review, paused, cancelled
    pending_review  sending, draft
    paused          sending, cancelled
    sent, cancelled: terminal

Upstream's edges, plus Owlat's `paused` (and `cancelled` from sending and paused): a
paused campaign keeps its walk position and its queued sends, so a resume neither skips
nor repeats anyone. `sending → draft | pending_review` are the content scan's, taken in
the mutation that starts sending, before the walk exists (`review.py`); `pending_review
→ sending | draft` are an admin's approval and rejection.
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
    PENDING_REVIEW = "pending_review"


EDGES: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.DRAFT: frozenset({CampaignStatus.SCHEDULED, CampaignStatus.SENDING}),
    CampaignStatus.SCHEDULED: frozenset(
        {CampaignStatus.DRAFT, CampaignStatus.SENDING, CampaignStatus.CANCELLED}
    ),
    CampaignStatus.SENDING: frozenset(
        {
            CampaignStatus.SENT,
            CampaignStatus.DRAFT,
            CampaignStatus.PENDING_REVIEW,
            CampaignStatus.PAUSED,
            CampaignStatus.CANCELLED,
        }
    ),
    CampaignStatus.PENDING_REVIEW: frozenset({CampaignStatus.SENDING, CampaignStatus.DRAFT}),
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
