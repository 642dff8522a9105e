"""How fast campaign messages go out: token buckets and back-off, per provider and per
receiving domain, kept in the delivery process (issue 17).

    rates      `Rates` (instance setting): messages per second per provider kind
               (OWLAT_PROVIDER_RATES, e.g. "ses=14"), per receiving domain
               (OWLAT_DOMAIN_RATE for every domain, OWLAT_DOMAIN_RATES for some, e.g.
               "gmail.com=50,yahoo.com=20"); 0 or absent: unlimited (the default: a relay
               or provider that wants less says so with 421/451/454, handled below).
    buckets    one token bucket per (organization, provider: the route's first, which
               a failover's backup shares) and per (organization, receiving domain),
               burst = one second's worth (at least 1). Before each message the worker
               takes a token from both and waits for them; when the wait would exceed
               `MAX_HOLD` seconds, it does not wait while holding the claim: the message
               goes back to `queued`, due when the tokens will be there.
    back-off   a deferral (a retryable error: SMTP 4xx such as 421/451/452/454, a lost
               connection before the end of DATA, a provider's rate limit) pauses its
               scope for `delay` seconds, doubled at each deferral in a row from
               `BASE_DELAY` to `MAX_DELAY` (or the provider's Retry-After when longer); a
               success resets it. The scope is the receiving domain when the refusal came
               at RCPT (the recipient's side answered), else the provider (connect, MAIL,
               DATA, rate limits: the relay itself). While a scope is paused, its messages
               are not sent: they go back to `queued`, due when the pause ends.
    requeue    a deferred or held message goes back from `sending` to `queued` in the
               batch's record mutation, with `updatedAt` set to when it is due (the claim
               takes queued sends with `updatedAt <= now` from the `by_campaign_status`
               index, so a due time needs no other field) and its claim undone
               (`attempts - 1`: nothing was delivered). `deferrals` counts provider
               deferrals; at `MAX_DEFERRALS` the send fails with the last error's code.
               Never doubled: the provider refused or never saw the message (an UNKNOWN
               outcome, no answer to DATA, is not retried). Never lost: the row is
               `queued` again in the same mutation that records the batch.

The state lives in this process: two `owlat serve` nodes each keep their own buckets (each
sends at most the configured rate, so together at most twice as much).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping

MAX_HOLD = 2.0  # seconds a worker waits for a token while holding the claim
BASE_DELAY = 1.0  # seconds of the first back-off of a scope
MAX_DELAY = 300.0  # seconds: the longest back-off
MAX_DEFERRALS = 25  # deferrals of one send before it fails (~1.5 h at MAX_DELAY)
# Outcome codes (`sends.failed_outcome`) that are deferrals, not failures.
DEFERRABLE = frozenset({"RATE_LIMIT", "SERVER_ERROR"})


@dataclasses.dataclass(frozen=True)
class Rates:
    """Messages per second (0: unlimited), module docstring."""

    providers: Mapping[str, float] = dataclasses.field(default_factory=dict)
    domain: float = 0.0
    domains: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def for_domain(self, domain: str) -> float:
        return self.domains.get(domain, self.domain)


def parse_rates(text: str, what: str) -> dict[str, float]:
    """`"name=rate,name=rate"` as a dict; ValueError naming `what` when malformed."""
    rates: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not name.strip() or not 0 <= rate < 1e9:
            raise ValueError(f"{what}: expected name=messages per second, got {item!r}")
        rates[name.strip().lower()] = rate
    return rates


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate, self.burst = rate, max(1.0, rate)
        self._clock = clock
        self._tokens, self._at = self.burst, clock()

    def wait(self) -> float:
        """Seconds until the next token (0: one is there now)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self) -> None:
        """Take the next token (after `wait`; the balance may go below 0 in advance)."""
        self._tokens -= 1


@dataclasses.dataclass
class _Backoff:
    until: float = 0.0
    delay: float = 0.0


class Throttle:
    """The buckets and back-off of one process (module docstring); `clock`: monotonic."""

    def __init__(self, rates: Rates, clock: Callable[[], float] = time.monotonic) -> None:
        self.rates = rates
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._backoff: dict[tuple[str, str], _Backoff] = {}

    def _bucket(self, key: tuple[str, str], rate: float) -> TokenBucket | None:
        if rate <= 0:
            return None
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[key] = TokenBucket(rate, self._clock)
        return bucket

    def admit(self, organization_id: str, provider: str, domain: str) -> tuple[float, bool]:
        """(seconds to wait, whether to send after waiting them) for one message: the
        later of both scopes' pauses and tokens; tokens are taken only when it sends
        within `MAX_HOLD`. Not sending: the message is due after the seconds returned."""
        now = self._clock()
        scopes = ((organization_id, f"provider:{provider}"), (organization_id, domain))
        paused = max(self._backoff.get(key, _Backoff()).until for key in scopes) - now
        if paused > 0:
            return paused, False
        buckets = [
            bucket
            for bucket in (
                self._bucket(scopes[0], self.rates.providers.get(provider, 0.0)),
                self._bucket(scopes[1], self.rates.for_domain(domain)),
            )
            if bucket is not None
        ]
        wait = max((bucket.wait() for bucket in buckets), default=0.0)
        if wait > MAX_HOLD:
            return wait, False
        for bucket in buckets:
            bucket.take()
        return wait, True

    def deferred(self, organization_id: str, scope: str, retry_after: float | None = None) -> float:
        """A deferral in `scope` (a domain, or `provider:<name>`): its pause, in seconds."""
        state = self._backoff.setdefault((organization_id, scope), _Backoff())
        now = self._clock()
        if state.until <= now:  # not already paused by a message in flight at once
            state.delay = min(MAX_DELAY, max(BASE_DELAY, state.delay * 2))
            state.until = now + max(state.delay, retry_after or 0.0)
        return state.until - now

    def succeeded(self, organization_id: str, provider: str, domain: str) -> None:
        """A message went out: both scopes resume at full speed."""
        for scope in (f"provider:{provider}", domain):
            self._backoff.pop((organization_id, scope), None)


_current: Throttle | None = None


def current(rates: Rates) -> Throttle:
    """The process's throttle, with `rates` (the instance setting; a new one when changed)."""
    global _current
    if _current is None or _current.rates != rates:
        _current = Throttle(rates)
    return _current
