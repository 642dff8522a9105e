"""The delivery step's outcome recorder (`sends._Records`): a failed `record` mutation is
raised to the caller, never dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from owlat.app.lib.sending.sends import _Records


class _FailingOnce:
    """An action context whose first mutation fails; it counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def run_mutation(self, function: Any, args: Any) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("record failed: database is locked")


async def test_a_failed_record_is_raised_even_after_its_flush_ended() -> None:
    ctx = _FailingOnce()
    records = _Records(ctx)  # type: ignore[arg-type]
    records.add("send-1", {"status": "sent"}, ())
    for _ in range(5):  # the flush runs and fails before anyone waits
        await asyncio.sleep(0)
    assert ctx.calls == 1
    with pytest.raises(RuntimeError, match="database is locked"):
        await records.wait()


async def test_a_failed_record_is_raised_after_a_later_record_succeeded() -> None:
    ctx = _FailingOnce()
    records = _Records(ctx)  # type: ignore[arg-type]
    records.add("send-1", {"status": "sent"}, ())
    for _ in range(5):
        await asyncio.sleep(0)
    records.add("send-2", {"status": "sent"}, ())  # a new flush, which succeeds
    with pytest.raises(RuntimeError, match="database is locked"):
        await records.wait()
    assert ctx.calls == 2
