"""Idempotent mutations per (sessionId, requestId), and pushing the clock forward."""

from __future__ import annotations

import time

import pytest

from owlat.runtime.application import Application
from owlat.runtime.database.commits import Commit
from owlat.runtime.database.transaction import Transaction
from owlat.runtime.errors import ConvexError
from owlat.runtime.sync import session_requests
from owlat.runtime.sync.session_requests import SessionRequest


async def count(app: Application, channel: str) -> int:
    return len((await app.run_query("messages:list", {"channel": channel})).value)


async def test_a_repeated_request_returns_the_recorded_outcome_without_running(
    app: Application,
) -> None:
    request = SessionRequest("session-1", 0)
    args = {"channel": "a", "body": "hi"}
    first = await app.run_mutation("messages:send", args, hook=request)
    commits: list[Commit] = []
    app.on_commit(commits.append)
    again = await app.run_mutation("messages:send", args, hook=request)
    assert (again.value, again.ts) == (first.value, first.ts)
    assert commits == []  # nothing ran, nothing committed
    assert await count(app, "a") == 1
    other_session = await app.run_mutation(
        "messages:send", args, hook=SessionRequest("session-2", 0)
    )
    assert other_session.value != first.value and await count(app, "a") == 2


async def test_the_record_commits_with_the_mutation_at_its_ts(app: Application) -> None:
    commits: list[Commit] = []
    app.on_commit(commits.append)
    result = await app.run_mutation(
        "messages:send", {"channel": "a", "body": "x"}, hook=SessionRequest("s", 7)
    )
    (commit,) = commits
    assert commit.ts == result.ts
    assert sorted(change.table for change in commit.write_set.documents) == [
        "_session_requests",
        "messages",
    ]


async def test_failed_mutations_are_not_recorded(app: Application) -> None:
    request = SessionRequest("s", 1)
    for _ in range(2):
        with pytest.raises(ConvexError):
            await app.run_mutation("messages:send", {"channel": "a", "body": ""}, hook=request)
    ok = await app.run_mutation("messages:send", {"channel": "a", "body": "now"}, hook=request)
    assert ok.ts is not None and await count(app, "a") == 1


async def test_old_records_are_pruned(app: Application) -> None:
    for request_id in range(3):
        await app.run_mutation(
            "messages:send",
            {"channel": "a", "body": "x"},
            hook=SessionRequest("s", request_id),
        )

    async def prune_now(txn: Transaction) -> int:
        return await session_requests.prune(txn, now_ms=time.time() * 1000)

    async def prune_tomorrow(txn: Transaction) -> int:
        tomorrow = time.time() * 1000 + session_requests.RETENTION_MS + 1000
        return await session_requests.prune(txn, now_ms=tomorrow)

    assert await app.run_system_write(prune_now) == 0
    assert await app.run_system_write(prune_tomorrow) == 3
    replay = await app.run_mutation(
        "messages:send", {"channel": "a", "body": "x"}, hook=SessionRequest("s", 0)
    )
    assert replay.ts is not None and await count(app, "a") == 4


async def test_advance_ts_pushes_snapshots_and_commits_past_an_observed_ts(
    app: Application,
) -> None:
    commits: list[Commit] = []
    app.on_commit(commits.append)
    ahead = time.time_ns() + 5 * 10**9
    assert await app.advance_ts(ahead) == ahead
    assert commits == [Commit(ahead, commits[0].write_set)] and not commits[0].write_set
    async with app.snapshot() as snapshot:
        assert snapshot.ts == ahead
    later = await app.run_mutation("messages:send", {"channel": "a", "body": "x"})
    assert later.ts is not None and later.ts > ahead
    assert await app.advance_ts(1) == later.ts  # never backwards
