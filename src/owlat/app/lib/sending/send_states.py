"""A send's delivery state (reference §10.1, plus `sending`), no I/O.

    queued ──▶ sending ──▶ sent ──▶ delivered ──▶ opened ──▶ clicked
      │          │  ↺        │          (each may still bounce or be complained about)
      └─▶ failed ◀┘          └─▶ failed (the provider refused it later)

`sending` is Owlat's addition: it is committed *before* the provider call, with the key
the provider dedupes by, so a crash between the two leaves evidence (`sends.py` decides
what to do with a stalled `sending` row; `sending → sending` is that re-claim).

    from        legal to
    queued      sending, failed
    sending     sending (re-claim), sent, failed
    sent        failed, delivered, opened, clicked, bounced, complained
    delivered   opened, clicked, bounced, complained
    opened      clicked, bounced, complained
    clicked     bounced, complained
    bounced     bounced (soft → hard only), complained; a hard bounce is terminal
    failed, complained: terminal

`transition` never raises: provider webhooks arrive late, twice and out of order, and
their caller records nothing for a refused edge. The same state again is `DUPLICATE`
(no effects; the caller still counts a repeated open or click).
"""

from __future__ import annotations

import enum


class SendStatus(enum.StrEnum):
    QUEUED = "queued"  # recorded, not yet handed to a provider
    SENDING = "sending"  # claimed: the provider call is about to happen or happening
    SENT = "sent"  # the provider took it
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    FAILED = "failed"  # refused before or by the provider; never sent


class Outcome(enum.StrEnum):
    APPLY = "apply"
    DUPLICATE = "duplicate"
    ILLEGAL = "illegal_edge"
    TERMINAL = "terminal"


_REACTIONS = frozenset({SendStatus.BOUNCED, SendStatus.COMPLAINED})
EDGES: dict[SendStatus, frozenset[SendStatus]] = {
    SendStatus.QUEUED: frozenset({SendStatus.SENDING, SendStatus.FAILED}),
    SendStatus.SENDING: frozenset({SendStatus.SENDING, SendStatus.SENT, SendStatus.FAILED}),
    SendStatus.SENT: frozenset(
        {SendStatus.FAILED, SendStatus.DELIVERED, SendStatus.OPENED, SendStatus.CLICKED}
        | _REACTIONS
    ),
    SendStatus.DELIVERED: frozenset({SendStatus.OPENED, SendStatus.CLICKED} | _REACTIONS),
    SendStatus.OPENED: frozenset({SendStatus.CLICKED} | _REACTIONS),
    SendStatus.CLICKED: _REACTIONS,
    SendStatus.BOUNCED: _REACTIONS,
    SendStatus.COMPLAINED: frozenset(),
    SendStatus.FAILED: frozenset(),
}


def transition(
    current: SendStatus,
    to: SendStatus,
    *,
    bounce: str | None = None,
    new_bounce: str | None = None,
) -> Outcome:
    """Whether a send in `current` (with `bounce` type "hard"/"soft" when bounced) may move
    to `to` (with `new_bounce` when bouncing): the table in the module docstring."""
    hard_bounced = current is SendStatus.BOUNCED and bounce == "hard"
    if not EDGES[current] or hard_bounced:
        return Outcome.DUPLICATE if to is current else Outcome.TERMINAL
    if current is SendStatus.BOUNCED and to is SendStatus.BOUNCED:
        return Outcome.APPLY if new_bounce == "hard" else Outcome.DUPLICATE
    if to is current and current is not SendStatus.SENDING:
        return Outcome.DUPLICATE
    return Outcome.APPLY if to in EDGES[current] else Outcome.ILLEGAL
