"""Routing rules (single, priority_failover, workload_split), provider health, and
`deliver`'s retries, with an injected clock and recorded sleeps."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from owlat.app.lib.email_providers.dispatch import deliver
from owlat.app.lib.email_providers.routing import (
    MIN_CALLS,
    WINDOW,
    Health,
    MessageType,
    NoDeliveryProvider,
    Route,
    RouteTarget,
    Status,
    Strategy,
    choose,
    route_for,
)
from owlat.app.lib.email_providers.types import EmailMessage, ErrorKind, ProviderError, SendResult

FAILOVER = Route(Strategy.PRIORITY_FAILOVER, (RouteTarget("a"), RouteTarget("b")))


def down(health: Health, provider: str, now: float = 0.0) -> None:
    for _ in range(health.threshold):
        health.record_failure(provider, ErrorKind.SERVER_ERROR, now)


def test_single_takes_the_first_enabled_provider_whatever_its_health() -> None:
    route = Route(Strategy.SINGLE, (RouteTarget("a", enabled=False), RouteTarget("b")))
    health = Health()
    down(health, "b")
    assert choose(route, health, 1.0, random.Random(1)) == "b"


def test_priority_failover_skips_a_provider_while_it_cools_down() -> None:
    health = Health(threshold=3, cool_down=60)
    assert choose(FAILOVER, health, 0, random.Random()) == "a"
    health.record_failure("a", ErrorKind.SERVER_ERROR, 0)
    health.record_failure("a", ErrorKind.RATE_LIMIT, 1)
    assert choose(FAILOVER, health, 2, random.Random()) == "a"
    health.record_failure("a", ErrorKind.AUTH_FAILED, 2)
    assert choose(FAILOVER, health, 3, random.Random()) == "b"
    assert choose(FAILOVER, health, 61.9, random.Random()) == "b"
    assert choose(FAILOVER, health, 62, random.Random()) == "a"  # half open
    health.record_failure("a", ErrorKind.SERVER_ERROR, 62)  # one more fault: down again
    assert choose(FAILOVER, health, 63, random.Random()) == "b"
    health.record_success("a")
    assert choose(FAILOVER, health, 64, random.Random()) == "a"


def test_faults_of_one_message_say_nothing_about_the_provider() -> None:
    health = Health(threshold=2)
    for kind in (
        ErrorKind.INVALID_RECIPIENT,
        ErrorKind.CONTENT_REJECTED,
        ErrorKind.INVALID_SENDER,
        ErrorKind.UNKNOWN,
    ) * 3:
        health.record_failure("a", kind, 0)
    assert health.is_up("a", 0)


def test_a_success_clears_the_count_of_consecutive_faults() -> None:
    health = Health(threshold=3)
    for _ in range(2):
        health.record_failure("a", ErrorKind.SERVER_ERROR, 0)
    health.record_success("a")
    for _ in range(2):
        health.record_failure("a", ErrorKind.SERVER_ERROR, 0)
    assert health.is_up("a", 0)


def calls(health: Health, provider: str, outcomes: str, now: float = 0.0) -> None:
    """Record `outcomes` for `provider`: "1" a success, "0" a SERVER_ERROR."""
    for outcome in outcomes:
        if outcome == "1":
            health.record_success(provider)
        else:
            health.record_failure(provider, ErrorKind.SERVER_ERROR, now)


def test_health_bands_over_the_window_of_recent_calls() -> None:
    """healthy at >= 90 % success over the last WINDOW calls, degraded from 50 %; one
    fault after a run of successes is not "degraded"; older calls leave the window."""
    health = Health()
    assert health.status("a", 0) is Status.HEALTHY  # no calls yet
    calls(health, "a", "1" * 30 + "0")
    assert (health.status("a", 0), health.success_rate("a")) == (Status.HEALTHY, 19 / 20)
    calls(health, "a", "0")
    assert (health.status("a", 0), health.success_rate("a")) == (Status.HEALTHY, 18 / 20)
    calls(health, "a", "0")
    assert (health.status("a", 0), health.success_rate("a")) == (Status.DEGRADED, 17 / 20)
    calls(health, "a", "1100" * 2)
    assert (health.status("a", 0), health.success_rate("a")) == (Status.DEGRADED, 13 / 20)
    calls(health, "a", "1" * WINDOW)  # the faults leave the window
    assert (health.status("a", 0), health.success_rate("a")) == (Status.HEALTHY, 1.0)
    assert len(health.recent("a")) == WINDOW


def test_a_success_rate_under_half_puts_a_provider_down_without_a_streak() -> None:
    """Faults two at a time (never 5 in a row) at 30 % success: down once the window holds
    MIN_CALLS calls, skipped by priority_failover and workload_split; after the cool-down
    it is judged on a fresh window."""
    health = Health(cool_down=60)
    pattern = "001" * 3 + "0"
    calls(health, "a", pattern[: MIN_CALLS - 1], now=0)
    assert health.status("a", 0) is Status.DEGRADED  # too few calls to say down
    calls(health, "a", pattern[MIN_CALLS - 1 :], now=0)
    assert health.faults("a") < health.threshold
    assert health.status("a", 1) is Status.DOWN
    assert choose(FAILOVER, health, 1, random.Random()) == "b"
    split = Route(Strategy.WORKLOAD_SPLIT, (RouteTarget("a", 100), RouteTarget("b", 1)))
    assert {choose(split, health, 1, random.Random(3)) for _ in range(50)} == {"b"}
    assert health.status("a", 60) is Status.HEALTHY and health.recent("a") == ""
    assert choose(FAILOVER, health, 60, random.Random()) == "a"


def test_five_consecutive_faults_put_a_provider_down_whatever_its_rate() -> None:
    health = Health()
    calls(health, "a", "1" * 15 + "0000")
    assert health.status("a", 0) is Status.DEGRADED  # 75 %, 4 in a row
    calls(health, "a", "0")
    assert health.status("a", 0) is Status.DOWN
    assert choose(FAILOVER, health, 0, random.Random()) == "b"


def test_workload_split_follows_the_weights_among_providers_that_are_up() -> None:
    route = Route(
        Strategy.WORKLOAD_SPLIT,
        (RouteTarget("a", 3), RouteTarget("b", 1), RouteTarget("c", 5, enabled=False)),
    )
    rng = random.Random(7)
    counts = Counter(choose(route, Health(), 0, rng) for _ in range(4000))
    assert set(counts) == {"a", "b"}
    assert 2.6 < counts["a"] / counts["b"] < 3.4
    health = Health()
    down(health, "a")
    assert {choose(route, health, 1, rng) for _ in range(50)} == {"b"}


def test_when_every_provider_is_down_the_error_says_when_to_come_back() -> None:
    health = Health(threshold=1, cool_down=30)
    health.record_failure("a", ErrorKind.SERVER_ERROR, 0)
    health.record_failure("b", ErrorKind.SERVER_ERROR, 10)
    with pytest.raises(ProviderError) as raised:
        choose(FAILOVER, health, 12, random.Random())
    assert raised.value.kind is ErrorKind.SERVER_ERROR
    assert raised.value.retry_after == 18


def test_a_message_type_without_an_enabled_route_fails_closed() -> None:
    routes = {
        MessageType.CAMPAIGN: FAILOVER,
        MessageType.AUTOMATION: Route(Strategy.SINGLE, (RouteTarget("a", enabled=False),)),
    }
    assert route_for(routes, MessageType.CAMPAIGN) is FAILOVER
    for missing in (MessageType.TRANSACTIONAL, MessageType.AUTOMATION):
        with pytest.raises(NoDeliveryProvider, match=f"for {missing} messages"):
            route_for(routes, missing)


# -- deliver -----------------------------------------------------------------------------------


class Scripted:
    """A provider answering a scripted list of errors, then successes."""

    def __init__(self, name: str, errors: list[ProviderError] | None = None) -> None:
        self.name, self.errors, self.calls = name, list(errors or []), 0

    async def send(self, message: EmailMessage) -> SendResult:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return SendResult(f"{self.name}-{self.calls}")


MESSAGE = EmailMessage(to="a@example.org", subject="s", text="t")


def error(kind: ErrorKind, retry_after: float | None = None) -> ProviderError:
    return ProviderError(kind, kind.value.lower(), retry_after)


async def test_retryable_errors_are_retried_after_the_delays_or_the_providers_hint() -> None:
    provider = Scripted(
        "a",
        [
            error(ErrorKind.SERVER_ERROR),
            error(ErrorKind.RATE_LIMIT, 12.0),
            error(ErrorKind.SERVER_ERROR),
        ],
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    route = Route(Strategy.SINGLE, (RouteTarget("a"),))
    delivery = await deliver(MESSAGE, route, {"a": provider}, Health(), sleep=sleep)
    assert (delivery.provider, delivery.result.message_id, delivery.attempts) == ("a", "a-4", 4)
    assert waits == [1.0, 12.0, 30.0]


async def test_terminal_errors_and_the_last_attempt_are_raised() -> None:
    route = Route(Strategy.SINGLE, (RouteTarget("a"),))
    terminal = Scripted("a", [error(ErrorKind.INVALID_RECIPIENT)])
    with pytest.raises(ProviderError) as raised:
        await deliver(MESSAGE, route, {"a": terminal}, Health(), sleep=_no_sleep)
    assert (raised.value.kind, terminal.calls) == (ErrorKind.INVALID_RECIPIENT, 1)
    failing = Scripted("a", [error(ErrorKind.SERVER_ERROR)] * 5)
    with pytest.raises(ProviderError):
        await deliver(MESSAGE, route, {"a": failing}, Health(), sleep=_no_sleep, delays=(0, 0))
    assert failing.calls == 3


async def test_failover_moves_to_the_next_provider_once_the_first_is_down() -> None:
    first = Scripted("a", [error(ErrorKind.SERVER_ERROR)] * 2)
    second = Scripted("b")
    health = Health(threshold=2)
    delivery = await deliver(
        MESSAGE, FAILOVER, {"a": first, "b": second}, health, sleep=_no_sleep, clock=lambda: 100.0
    )
    assert (delivery.provider, delivery.attempts, first.calls) == ("b", 3, 2)
    assert not health.is_up("a", 100.0)


async def _no_sleep(seconds: float) -> None:
    return None


def test_health_is_restored_from_stored_state() -> None:
    health = Health(threshold=3, cool_down=60)
    health.restore("a", 3, 160.0)
    assert (health.faults("a"), health.is_up("a", 159.0), health.is_up("a", 160.0)) == (
        3, False, True,
    )  # fmt: skip
    health.restore("a", 0, None)
    assert (health.faults("a"), health.down_until("a")) == (0, None)
    health.restore("a", 1, None, "1" * 25 + "0")
    assert (health.recent("a"), health.status("a", 0)) == ("1" * 19 + "0", Status.HEALTHY)
