"""Test sends per member: `TEST_SENDS` per `TEST_WINDOW_MS`, counted across every kind of
test send (`emails:sendTest`, `transactionalEmails:sendTest`)."""

from __future__ import annotations

from owlat.app.lib.errors import AuthFailure
from owlat.app.lib.rate_limits import window_count
from owlat.app.lib.session_organization import now_ms
from owlat.runtime import MutationCtx

TEST_SENDS = 30
TEST_WINDOW_MS = 10 * 60_000


async def take_test_send(ctx: MutationCtx, user_id: str) -> None:
    """Count one test send of `user_id`, or refuse it (TOO_MANY_REQUESTS) past the quota."""
    count, ends = await window_count(ctx, f"test-sends:{user_id}", TEST_WINDOW_MS)
    if count > TEST_SENDS:
        wait = max(1, int((ends - now_ms()) / 1000))
        raise AuthFailure(
            "TOO_MANY_REQUESTS",
            f"At most {TEST_SENDS} test sends per {TEST_WINDOW_MS // 60_000} minutes; "
            f"try again in {wait} s",
        )
