"""The delivery step's outcome recorder (`sends._Records`): a failed `record` mutation is
raised to the caller, never dropped; the outcomes of a claim's sends that end close
together share one `record` mutation, each recorded once, and a slow send does not hold
the others' outcomes back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from owlat.app.lib.sending import sends
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
    records = _Records(ctx, 1)  # type: ignore[arg-type]
    records.add("send-1", {"status": "sent"}, ())
    for _ in range(5):  # the flush runs and fails before anyone waits
        await asyncio.sleep(0)
    assert ctx.calls == 1
    with pytest.raises(RuntimeError, match="database is locked"):
        await records.wait()


async def test_a_failed_record_is_raised_after_a_later_record_succeeded() -> None:
    ctx = _FailingOnce()
    records = _Records(ctx, 1)  # type: ignore[arg-type]
    records.add("send-1", {"status": "sent"}, ())
    for _ in range(5):
        await asyncio.sleep(0)
    records.add("send-2", {"status": "sent"}, ())  # a new flush, which succeeds
    with pytest.raises(RuntimeError, match="database is locked"):
        await records.wait()
    assert ctx.calls == 2


class _Counting:
    """An action context that keeps the send ids of each `record` mutation."""

    def __init__(self) -> None:
        self.records: list[list[str]] = []

    async def run_mutation(self, function: Any, args: Any) -> None:
        self.records.append([item["sendId"] for item in args["records"]])
        await asyncio.sleep(0)  # a commit lets other tasks run


async def test_outcomes_that_end_close_together_share_one_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sends, "RECORD_GATHER", 60.0)  # whatever the machine's load
    ctx = _Counting()
    records = _Records(ctx, 3)  # type: ignore[arg-type]
    for number in range(3):
        records.add(f"send-{number}", {"status": "sent"}, ())
        for _ in range(5):  # the next send ends a moment later
            await asyncio.sleep(0)
    await records.wait()
    assert ctx.records == [["send-0", "send-1", "send-2"]]


async def test_a_slow_send_does_not_hold_the_others_outcomes_back() -> None:
    ctx = _Counting()
    records = _Records(ctx, 2)  # type: ignore[arg-type]
    records.add("send-0", {"status": "sent"}, ())
    for _ in range(100):  # send-1 is still with its provider
        if ctx.records:
            break
        await asyncio.sleep(sends.RECORD_GATHER)
    assert ctx.records == [["send-0"]]
    records.add("send-1", {"status": "sent"}, ())
    await records.wait()
    assert ctx.records == [["send-0"], ["send-1"]]
