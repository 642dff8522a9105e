"""Which provider sends a message: routes per message type and provider health
(reference §8.4). Pure logic: the caller passes the clock (`now`, seconds) and the
random source.

A route names providers with a weight and an enabled flag, and a strategy:

    single              the first enabled provider, whatever its health
    priority_failover   the first enabled provider that is up
    workload_split      a weighted random choice among the enabled providers that are up

Health: `threshold` consecutive provider faults (RATE_LIMIT, SERVER_ERROR, AUTH_FAILED;
a refused recipient says nothing about the provider) put a provider down for `cool_down`
seconds. After it, the next call may use it again ("half open"): a success clears the
count, one more fault puts it down for another cool-down. When every enabled provider of
a route is down, `choose` raises a retryable SERVER_ERROR whose `retry_after` is the
soonest end of a cool-down. A message type without a route fails closed
(`NoDeliveryProvider`).
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


@dataclasses.dataclass
class Health:
    threshold: int = 5
    cool_down: float = 60.0
    _faults: dict[str, int] = dataclasses.field(default_factory=dict)
    _down_until: dict[str, float] = dataclasses.field(default_factory=dict)

    def record_success(self, provider: str) -> None:
        self._faults.pop(provider, None)
        self._down_until.pop(provider, None)

    def record_failure(self, provider: str, kind: ErrorKind, now: float) -> None:
        if not kind.provider_fault:
            return
        faults = self._faults[provider] = self._faults.get(provider, 0) + 1
        if faults >= self.threshold:
            self._down_until[provider] = now + self.cool_down

    def is_up(self, provider: str, now: float) -> bool:
        return now >= self._down_until.get(provider, now)

    def down_until(self, provider: str) -> float | None:
        return self._down_until.get(provider)

    def faults(self, provider: str) -> int:
        """Consecutive provider faults since its last success."""
        return self._faults.get(provider, 0)

    def restore(self, provider: str, faults: int, down_until: float | None) -> None:
        """Set a provider's state as stored elsewhere (the app keeps it in the database)."""
        self._faults.pop(provider, None)
        self._down_until.pop(provider, None)
        if faults:
            self._faults[provider] = faults
        if down_until is not None:
            self._down_until[provider] = down_until


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
