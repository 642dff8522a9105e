"""Suppression scopes by send kind (reference §10.2)."""

from __future__ import annotations

import pytest

from owlat.app.lib.sending.composition import SendKind
from owlat.app.lib.sending.suppression import suppression_reason

K = SendKind
EMAIL = "x@example.com"


@pytest.mark.parametrize(
    ("kind", "blocked", "unsubscribed", "blocked_by"),
    [
        (K.CAMPAIGN, "manual", False, "on the suppression list (manual)"),
        (K.CAMPAIGN, "unengaged", False, "on the suppression list (unengaged)"),
        (K.CAMPAIGN, None, True, "unsubscribed from all marketing email"),
        (K.AUTOMATION, "bounced", False, "on the suppression list (bounced)"),
        (K.AUTOMATION, None, True, "unsubscribed from all marketing email"),
        (K.TRANSACTIONAL, "complained", False, "on the suppression list (complained)"),
        (K.TRANSACTIONAL, "unengaged", False, None),
        (K.TRANSACTIONAL, None, True, None),
        (K.TEST, "complained", True, None),
        (K.CAMPAIGN, None, False, None),
    ],
)
def test_scopes(
    kind: SendKind, blocked: str | None, unsubscribed: bool, blocked_by: str | None
) -> None:
    reason = suppression_reason(kind, EMAIL, blocked, unsubscribed)
    if blocked_by is None:
        assert reason is None
    else:
        assert reason == f"{EMAIL} {'is ' if 'list' in blocked_by else ''}{blocked_by}"
