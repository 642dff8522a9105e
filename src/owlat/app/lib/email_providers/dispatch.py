"""Deliver one message through a route: choose a provider, send, record its health, and
retry what may be retried (reference §8.4).

A retryable error (RATE_LIMIT, SERVER_ERROR) is retried after `delays[i]` seconds, or the
provider's `retry_after` when longer; each attempt chooses again, so a provider that went
down meanwhile is skipped by priority_failover and workload_split. Any other error, or
the last attempt's, is raised as it is. Retrying is safe by construction: a retryable
error means the provider did not take the message (or dedupes the retry, as Resend does
with the idempotency key).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Mapping

from owlat.app.lib.email_providers.routing import Health, Route, choose
from owlat.app.lib.email_providers.types import (
    EmailMessage,
    EmailProvider,
    ProviderError,
    SendResult,
)

RETRY_DELAYS = (1.0, 5.0, 30.0)
_RNG = random.Random()  # one for every delivery: seeding one per message costs ~10 µs


@dataclasses.dataclass(frozen=True)
class Delivery:
    provider: str
    result: SendResult
    attempts: int


async def deliver(
    message: EmailMessage,
    route: Route,
    providers: Mapping[str, EmailProvider],
    health: Health,
    *,
    delays: tuple[float, ...] = RETRY_DELAYS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> Delivery:
    rng = rng or _RNG
    for attempt in range(len(delays) + 1):
        name = ""
        try:
            name = choose(route, health, clock(), rng)
            result = await providers[name].send(message)
        except ProviderError as error:
            if name:
                health.record_failure(name, error.kind, clock())
            if not error.retryable or attempt == len(delays):
                raise
            await sleep(max(delays[attempt], error.retry_after or 0.0))
        else:
            health.record_success(name)
            return Delivery(name, result, attempt + 1)
    raise AssertionError("unreachable")
