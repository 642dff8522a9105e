"""Which provider sends a message: routes per message type and provider health
(reference §8.4). Pure logic: the caller passes the clock (`now`, seconds) and the
random source.

A route names providers with a weight and an enabled flag, and a strategy:

    single              the first enabled provider, whatever its health
    priority_failover   the first enabled provider that is not down
    workload_split      a weighted random choice among the enabled providers not down

Health (§8.4) judges each provider on its calls: a success, or a provider fault
(RATE_LIMIT, SERVER_ERROR, AUTH_FAILED; a refused recipient says nothing about the
provider). Over a rolling window of its last `WINDOW` (20) calls a provider is healthy at
a success rate of 90 % or more, degraded from 50 % and down under 50 % (judged once the
window holds `MIN_CALLS`, 10; with fewer calls a low rate reads as degraded). `threshold`
(5) consecutive faults also put it down, whatever the rate. Down lasts `cool_down` seconds
and starts a fresh window; after it the next call may use the provider again ("half
open"): a success clears the streak, one more fault (the streak is still at 5) puts it down
for another cool-down. When every enabled provider of a route is down, `choose` raises a
retryable SERVER_ERROR whose `retry_after` is the soonest end of a cool-down. A message
type without a route fails closed (`NoDeliveryProvider`).
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Mapping

from owlat.app.lib.email_providers.types import ErrorKind, ProviderError


class Strategy(enum.StrEnum):
    SINGLE = "single"
    PRIORITY_FAILOVER = "priority_failover"
    WORKLOAD_SPLIT = "workload_split"


class MessageType(enum.StrEnum):
    CAMPAIGN = "campaign"
    TRANSACTIONAL = "transactional"
    AUTOMATION = "automation"
    TEST = "test"


@dataclasses.dataclass(frozen=True)
class RouteTarget:
    provider: str
    weight: int = 1
    enabled: bool = True


@dataclasses.dataclass(frozen=True)
class Route:
    strategy: Strategy
    targets: tuple[RouteTarget, ...]

    def __post_init__(self) -> None:
        if any(target.weight < 0 for target in self.targets):
            raise ValueError("route weights must be zero or more")


class NoDeliveryProvider(Exception):
    """No enabled provider is configured for this message type (no_delivery_provider)."""


WINDOW = 20
MIN_CALLS = 10
HEALTHY_RATE, DEGRADED_RATE = 0.9, 0.5


class Status(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclasses.dataclass
class Health:
    threshold: int = 5
    cool_down: float = 60.0
    _faults: dict[str, int] = dataclasses.field(default_factory=dict)
    _down_until: dict[str, float] = dataclasses.field(default_factory=dict)
    _recent: dict[str, str] = dataclasses.field(default_factory=dict)  # "1" success, "0" fault

    def record_success(self, provider: str) -> None:
        self._faults.pop(provider, None)
        self._down_until.pop(provider, None)
        self._remember(provider, "1")

    def record_failure(self, provider: str, kind: ErrorKind, now: float) -> None:
        if not kind.provider_fault:
            return
        faults = self._faults[provider] = self._faults.get(provider, 0) + 1
        recent = self._remember(provider, "0")
        rate = self.success_rate(provider) or 0.0
        if faults >= self.threshold or (len(recent) >= MIN_CALLS and rate < DEGRADED_RATE):
            self._down_until[provider] = now + self.cool_down
            self._recent.pop(provider)

    def _remember(self, provider: str, outcome: str) -> str:
        recent = self._recent[provider] = (self._recent.get(provider, "") + outcome)[-WINDOW:]
        return recent

    def is_up(self, provider: str, now: float) -> bool:
        return now >= self._down_until.get(provider, now)

    def status(self, provider: str, now: float) -> Status:
        """down while cooling down, else healthy or degraded by the window's success rate."""
        if not self.is_up(provider, now):
            return Status.DOWN
        rate = self.success_rate(provider)
        return Status.HEALTHY if rate is None or rate >= HEALTHY_RATE else Status.DEGRADED

    def success_rate(self, provider: str) -> float | None:
        """Successes over the calls of the window (None before any call)."""
        recent = self._recent.get(provider, "")
        return recent.count("1") / len(recent) if recent else None

    def recent(self, provider: str) -> str:
        """The window's outcomes, oldest first: "1" a success, "0" a provider fault."""
        return self._recent.get(provider, "")

    def down_until(self, provider: str) -> float | None:
        return self._down_until.get(provider)

    def faults(self, provider: str) -> int:
        """Consecutive provider faults since its last success."""
        return self._faults.get(provider, 0)

    def restore(
        self, provider: str, faults: int, down_until: float | None, recent: str = ""
    ) -> None:
        """Set a provider's state as stored elsewhere (the app keeps it in the database)."""
        self._faults.pop(provider, None)
        self._down_until.pop(provider, None)
        self._recent.pop(provider, None)
        if faults:
            self._faults[provider] = faults
        if down_until is not None:
            self._down_until[provider] = down_until
        if recent:
            self._recent[provider] = recent[-WINDOW:]


def route_for(routes: Mapping[MessageType, Route], message_type: MessageType) -> Route:
    route = routes.get(message_type)
    if route is None or not any(target.enabled for target in route.targets):
        raise NoDeliveryProvider(f"no enabled email provider for {message_type} messages")
    return route


def choose(route: Route, health: Health, now: float, rng: random.Random) -> str:
    """The provider to send the next message of `route` through."""
    enabled = [target for target in route.targets if target.enabled]
    if not enabled:
        raise NoDeliveryProvider("the route has no enabled provider")
    if route.strategy is Strategy.SINGLE:
        return enabled[0].provider
    up = [target for target in enabled if health.is_up(target.provider, now)]
    if not up:
        ends = [health.down_until(target.provider) or now for target in enabled]
        text = "every provider of the route is down (cooling down after repeated faults)"
        raise ProviderError(ErrorKind.SERVER_ERROR, text, max(0.0, min(ends) - now))
    if route.strategy is Strategy.PRIORITY_FAILOVER:
        return up[0].provider
    weights = [target.weight for target in up]
    if sum(weights) == 0:
        return up[0].provider
    return rng.choices(up, weights=weights)[0].provider
