"""Subscriptions: the interval index, invalidation by write sets, the shared query cache."""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from owlat.runtime.application import Application
from owlat.runtime.database.commits import Interval, ReadSet
from owlat.runtime.subscriptions import (
    COMMIT_LOG_KEYS,
    IntervalIndex,
    QueryKey,
    QueryResult,
    SubscriptionManager,
    apply_journal,
    canonical_json,
    journal_of,
)


class Recorder:
    """A subscriber that counts its wake-ups."""

    def __init__(self) -> None:
        self.wakes = 0

    def query_invalidated(self) -> None:
        self.wakes += 1


def key(path: str, **args: Any) -> QueryKey:
    return QueryKey(path, canonical_json(args))


async def subscribe_and_run(
    manager: SubscriptionManager, app: Application, query_key: QueryKey, subscriber: Recorder
) -> QueryResult:
    manager.subscribe(query_key, subscriber)
    async with app.snapshot() as snapshot:
        return await manager.result_at(snapshot, query_key)


# -- the interval index ----------------------------------------------------------------

keys = st.binary(min_size=0, max_size=3)
intervals = st.tuples(keys, keys).filter(lambda pair: pair[0] < pair[1])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(intervals, st.integers(0, 5)), max_size=12),
    st.lists(st.integers(0, 11), max_size=6),
    st.lists(keys, min_size=1, max_size=10),
)
def test_interval_index_agrees_with_brute_force(
    added: list[tuple[tuple[bytes, bytes], int]], removed: list[int], probes: list[bytes]
) -> None:
    index: IntervalIndex[tuple[int, int]] = IntervalIndex()
    live: dict[int, tuple[bytes, bytes, tuple[int, int]]] = {}
    for position, ((low, high), owner) in enumerate(added):
        index.add(low, high, (owner, position))  # members are unique per interval
        live[position] = (low, high, (owner, position))
    for position in removed:
        if position in live:
            low, high, member = live.pop(position)
            index.remove(low, high, member)
    for probe in probes:
        expected = {member for low, high, member in live.values() if low <= probe < high}
        assert index.stab(probe) == expected
    if not live:
        assert len(index) == 0  # every boundary was released


def test_interval_index_keeps_boundaries_shared_by_several_members() -> None:
    index: IntervalIndex[str] = IntervalIndex()
    index.add(b"b", b"d", "x")
    index.add(b"b", b"c", "y")
    index.remove(b"b", b"c", "y")
    assert index.stab(b"b") == {"x"} and index.stab(b"c") == {"x"} and index.stab(b"d") == set()
    index.remove(b"b", b"d", "x")
    assert len(index) == 0


# -- journals --------------------------------------------------------------------------


def test_journal_pins_the_end_cursor_of_paginated_queries_only() -> None:
    args: dict[str, Any] = {"channel": "a", "paginationOpts": {"numItems": 2.0, "cursor": None}}
    page = {"page": [], "isDone": False, "continueCursor": "abc"}
    journal = journal_of(args, page)
    assert journal == '{"endCursor":"abc"}'
    assert apply_journal(args, journal)["paginationOpts"]["endCursor"] == "abc"
    assert apply_journal(args, None) == args
    assert journal_of({"channel": "a"}, page) is None
    assert journal_of(args, [1.0]) is None
    pinned = {**args, "paginationOpts": {**args["paginationOpts"], "endCursor": "x"}}
    assert apply_journal(pinned, journal) == pinned  # the client's own endCursor wins
    assert apply_journal(args, "not json") == args


def test_canonical_args_ignore_number_spelling_and_key_order() -> None:
    assert canonical_json({"b": 1, "a": [2.0]}) == canonical_json({"a": [2], "b": 1.0})


# -- invalidation ----------------------------------------------------------------------


async def test_only_queries_whose_read_set_a_commit_touches_are_invalidated(
    app: Application,
) -> None:
    manager = SubscriptionManager(app)
    manager.catch_up()
    a_sub, b_sub = Recorder(), Recorder()
    a = await subscribe_and_run(manager, app, key("messages:list", channel="a"), a_sub)
    b = await subscribe_and_run(manager, app, key("messages:list", channel="b"), b_sub)
    assert a.value == [] and b.value == []

    sent = await app.run_mutation("messages:send", {"channel": "a", "body": "hi"})
    assert sent.ts is not None and a.invalid_from == sent.ts and a_sub.wakes == 1
    assert b.invalid_from is None and b_sub.wakes == 0
    assert manager.valid_at(b, sent.ts) and not manager.valid_at(a, sent.ts)
    assert manager.valid_at(a, a.ts)  # still the result at its own snapshot
    manager.close()


async def test_a_point_read_of_a_missing_document_sees_its_insertion(app: Application) -> None:
    manager = SubscriptionManager(app)
    manager.catch_up()
    counter = key("counters:get", name="c")
    result = await subscribe_and_run(manager, app, counter, subscriber := Recorder())
    assert result.value is None
    await app.run_mutation("counters:increment", {"name": "c"}, internal=True)
    assert subscriber.wakes == 1
    async with app.snapshot() as snapshot:
        assert (await manager.result_at(snapshot, counter)).value == 1.0
    await app.run_mutation("counters:increment", {"name": "other"}, internal=True)
    assert subscriber.wakes == 1
    manager.close()


async def test_results_are_shared_between_subscribers(app: Application) -> None:
    manager = SubscriptionManager(app)
    manager.catch_up()
    query = key("messages:list", channel="a")
    subscribers = [Recorder() for _ in range(5)]
    results = [await subscribe_and_run(manager, app, query, s) for s in subscribers]
    assert all(result is results[0] for result in results)
    assert manager.computations == 1
    await app.run_mutation("messages:send", {"channel": "a", "body": "x"})
    assert [s.wakes for s in subscribers] == [1] * 5
    async with app.snapshot() as snapshot:
        again = [await manager.result_at(snapshot, query) for _ in subscribers]
    assert manager.computations == 2 and all(r is again[0] for r in again)
    for subscriber in subscribers:
        manager.unsubscribe(query, subscriber)
    assert manager.cached_keys() == 0 and again[0].invalid_from is not None
    manager.close()


async def test_failed_queries_are_reactive_too(app: Application) -> None:
    manager = SubscriptionManager(app)
    manager.catch_up()
    query = key("counters:get", name=5)  # not a string: fails validation, reads nothing
    failed = await subscribe_and_run(manager, app, query, Recorder())
    assert failed.error is not None and len(failed.read_set) == 0
    manager.close()


async def test_a_result_computed_at_an_old_snapshot_is_checked_against_later_commits(
    app: Application,
) -> None:
    manager = SubscriptionManager(app)
    manager.catch_up()
    query = key("messages:list", channel="a")
    manager.subscribe(query, Recorder())
    async with app.snapshot() as old:
        sent = await app.run_mutation("messages:send", {"channel": "a", "body": "later"})
        result = await manager.result_at(old, query)
    assert result.value == [] and result.ts == old.ts
    assert result.invalid_from == sent.ts  # valid at its snapshot, not after the commit
    manager.close()


async def test_one_commit_costs_little_with_a_thousand_subscriptions(app: Application) -> None:
    manager = SubscriptionManager(app)
    manager.catch_up()
    subscribers = [Recorder() for _ in range(1000)]
    async with app.snapshot() as snapshot:
        for number, subscriber in enumerate(subscribers):
            query = key("messages:list", channel=f"c{number}")
            manager.subscribe(query, subscriber)
            await manager.result_at(snapshot, query)
    started = time.perf_counter()
    for _ in range(50):
        await app.run_mutation("messages:send", {"channel": "c7", "body": "x"})
    elapsed = time.perf_counter() - started
    assert [s.wakes for s in subscribers].count(0) == 999 and subscribers[7].wakes == 1
    assert elapsed < 2.0  # 50 commits, each matched against 1000 subscriptions
    manager.close()


async def test_the_log_of_recent_commits_holds_a_bounded_number_of_index_keys(
    app: Application,
) -> None:
    """Issue 17: the log kept 512 commits whatever their size, and a campaign's walk
    commits 3,000 index keys at a time (~300 MB for 512 of them)."""
    manager = SubscriptionManager(app)
    manager.catch_up()
    query = key("messages:list", channel="a")
    manager.subscribe(query, Recorder())
    bodies = ["x"] * 1000
    tracemalloc.start()
    try:
        async with app.snapshot() as old:
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(COMMIT_LOG_KEYS // 1000):  # 3 keys a message: 3 logs' worth
                await app.run_mutation(
                    "messages:sendMany", {"channel": "b", "bodies": bodies, "fail_at": -1}
                )
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
            result = await manager.result_at(old, query)
    finally:
        tracemalloc.stop()
    assert manager.logged_keys() <= COMMIT_LOG_KEYS
    assert held < COMMIT_LOG_KEYS * 250, held  # ~140 bytes a key, a third of them kept
    assert result.invalid_from == old.ts + 1  # older than the log: valid at its snapshot only
    manager.close()


def test_read_set_intervals_are_merged_before_indexing() -> None:
    from owlat.runtime.subscriptions import merged_intervals

    read_set = ReadSet()
    for low, high in [(b"a", b"c"), (b"b", b"d"), (b"d", b"e"), (b"x", b"y")]:
        read_set.add("t", "i", Interval(low, high))
    assert [interval for _, interval in merged_intervals(read_set)] == [
        Interval(b"a", b"e"),
        Interval(b"x", b"y"),
    ]
