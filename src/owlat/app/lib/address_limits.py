"""Requests per client address, counted in this process's memory.

For limits that must hold before any database work (a flood of junk must not write a
`rateLimits` row per request, as `rate_limits.py`'s shared counters do). Each server node
counts its own requests, so N nodes let an address through N times as often.

A fixed window: every `window` seconds every count starts again from zero, and an address may
make `limit` requests per window. Memory stays bounded: at most `max_addresses` addresses are
counted in one window; past that, addresses not yet counted share one count (a flood from
many addresses then throttles only the newcomers, never the addresses already counted).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

_NEWCOMERS: Final = "*"


class AddressLimiter:
    """At most `limit` requests per address per `window` seconds (see the module docstring)."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        max_addresses: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._window_end = -math.inf

    def take(self, address: str) -> int | None:
        """Count one request of `address`: None when allowed, else the whole seconds until
        its window ends (for Retry-After)."""
        now = self._clock()
        if now >= self._window_end:
            self._counts.clear()
            self._window_end = now + self.window
        if address not in self._counts and len(self._counts) >= self.max_addresses:
            address = _NEWCOMERS
        count = self._counts.get(address, 0) + 1
        self._counts[address] = count
        if count <= self.limit:
            return None
        return max(1, math.ceil(self._window_end - now))
