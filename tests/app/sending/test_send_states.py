"""The rulebook of a send's delivery state (reference §10.1, plus `sending`)."""

from __future__ import annotations

import pytest

from owlat.app.lib.sending.send_states import EDGES, Outcome, SendStatus, transition

S = SendStatus


@pytest.mark.parametrize(
    ("current", "to"),
    [
        (S.QUEUED, S.SENDING),
        (S.QUEUED, S.FAILED),
        (S.SENDING, S.SENT),
        (S.SENDING, S.FAILED),
        (S.SENT, S.DELIVERED),
        (S.SENT, S.FAILED),
        (S.SENT, S.CLICKED),
        (S.DELIVERED, S.OPENED),
        (S.OPENED, S.CLICKED),
        (S.CLICKED, S.COMPLAINED),
        (S.DELIVERED, S.BOUNCED),
    ],
)
def test_forward_edges_apply(current: SendStatus, to: SendStatus) -> None:
    assert transition(current, to) is Outcome.APPLY


def test_a_send_is_never_sent_without_being_claimed_first() -> None:
    assert transition(S.QUEUED, S.SENT) is Outcome.ILLEGAL


def test_a_stalled_claim_may_be_taken_again() -> None:
    assert transition(S.SENDING, S.SENDING) is Outcome.APPLY


@pytest.mark.parametrize(
    ("current", "to"),
    [(S.SENT, S.QUEUED), (S.SENT, S.SENDING), (S.CLICKED, S.OPENED), (S.OPENED, S.DELIVERED)],
)
def test_going_back_is_illegal(current: SendStatus, to: SendStatus) -> None:
    assert transition(current, to) is Outcome.ILLEGAL


@pytest.mark.parametrize("status", [S.QUEUED, S.SENT, S.DELIVERED, S.OPENED, S.CLICKED])
def test_the_same_state_again_is_a_duplicate(status: SendStatus) -> None:
    assert transition(status, status) is Outcome.DUPLICATE


@pytest.mark.parametrize("terminal", [S.FAILED, S.COMPLAINED])
def test_failed_and_complained_are_terminal(terminal: SendStatus) -> None:
    for to in SendStatus:
        expected = Outcome.DUPLICATE if to is terminal else Outcome.TERMINAL
        assert transition(terminal, to) is expected


def test_a_soft_bounce_may_harden_and_a_hard_bounce_is_terminal() -> None:
    assert transition(S.BOUNCED, S.BOUNCED, bounce="soft", new_bounce="hard") is Outcome.APPLY
    assert transition(S.BOUNCED, S.BOUNCED, bounce="soft", new_bounce="soft") is Outcome.DUPLICATE
    assert transition(S.BOUNCED, S.COMPLAINED, bounce="soft") is Outcome.APPLY
    assert transition(S.BOUNCED, S.COMPLAINED, bounce="hard") is Outcome.TERMINAL
    assert transition(S.BOUNCED, S.BOUNCED, bounce="hard", new_bounce="hard") is Outcome.DUPLICATE


def test_every_state_has_its_row_in_the_table() -> None:
    assert set(EDGES) == set(SendStatus)
