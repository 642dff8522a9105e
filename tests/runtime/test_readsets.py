"""Read sets of queries and write sets of commits, and the overlap test between them."""

from __future__ import annotations

from typing import Any

from owlat.runtime.application import Application
from owlat.runtime.database.catalog import id_key
from owlat.runtime.database.commits import Commit, ReadSet
from owlat.runtime.testing import in_mutation, in_query, query_result


async def commits_of(app: Application, handler: Any) -> list[Commit]:
    commits: list[Commit] = []
    app.on_commit(commits.append)
    try:
        await in_mutation(app, handler)
    finally:
        app.remove_commit_listener(commits.append)
    return commits


async def insert_messages(app: Application, channel: str, count: int) -> list[str]:
    async def write(ctx: Any) -> list[str]:
        return [
            await ctx.db.insert("messages", {"channel": channel, "body": str(i)})
            for i in range(count)
        ]

    ids: list[str] = await in_mutation(app, write)
    return ids


async def channel_read_set(app: Application, channel: str, take: int | None = None) -> ReadSet:
    async def read(ctx: Any) -> Any:
        query = ctx.db.query("messages").with_index(
            "by_channel", lambda q: q.eq("channel", channel)
        )
        return await (query.collect() if take is None else query.take(take))

    result = await query_result(app, read)
    assert result.read_set is not None
    return result.read_set


async def test_point_read_records_by_id_interval_even_when_missing(app: Application) -> None:
    (message_id,) = await insert_messages(app, "c", 1)

    async def delete(ctx: Any) -> None:
        await ctx.db.delete(message_id)

    await in_mutation(app, delete)

    async def read(ctx: Any) -> Any:
        return await ctx.db.get(message_id)

    result = await query_result(app, read)
    assert result.value is None
    assert result.read_set is not None
    (interval,) = result.read_set.intervals("messages", "by_id")
    assert interval.contains(id_key(message_id))
    assert not interval.contains(id_key(message_id) + b"x")


async def test_a_point_read_is_exactly_its_id_once_however_often_repeated(
    app: Application,
) -> None:
    """`db.get` of an existing document, read three times: one `by_id` interval, exactly
    the document's key, counted once against the range limit; a patch of it invalidates
    the query, a patch of its neighbour does not. The same through the public call path
    (`messages:get`), where a point read is recorded written out."""
    first, second = await insert_messages(app, "p", 2)

    async def read(ctx: Any) -> Any:
        for _ in range(3):
            document = await ctx.db.get(first)
        return document

    direct = await query_result(app, read)
    called = await app.run_query("messages:get", {"id": first})
    assert direct.value["_id"] == called.value["_id"] == first
    for read_set in (direct.read_set, called.read_set):
        assert read_set is not None
        assert [(space, list(intervals)) for space, intervals in read_set.items()] == [
            (("messages", "by_id"), [(id_key(first), id_key(first) + b"\x00")])
        ]

    async def patch(document_id: str) -> Any:
        async def body(ctx: Any) -> None:
            await ctx.db.patch(document_id, {"author": "someone"})

        (commit,) = await commits_of(app, body)
        return commit.write_set

    changed, neighbour = await patch(first), await patch(second)
    for read_set in (direct.read_set, called.read_set):
        assert read_set.overlaps(changed)
        assert not read_set.overlaps(neighbour)

    async def counted(ctx: Any) -> int:
        for _ in range(3):
            await ctx.db.get(first)
        await ctx.db.get(second)
        ranges: int = ctx._txn.index_ranges_read
        return ranges

    assert await in_query(app, counted) == 2


async def test_commit_write_set_has_old_and_new_keys_for_every_index(app: Application) -> None:
    (message_id,) = await insert_messages(app, "a", 1)

    async def move(ctx: Any) -> None:
        await ctx.db.patch(message_id, {"channel": "b"})

    (commit,) = await commits_of(app, move)
    assert commit.ts == app.latest_ts
    (document,) = commit.write_set.documents
    assert document.id == message_id
    assert document.old is not None and document.new is not None
    assert (document.old["channel"], document.new["channel"]) == ("a", "b")
    indexes = {change.index: change for change in commit.write_set.index_keys}
    assert set(indexes) == {"by_id", "by_creation_time", "by_channel"}
    channel_change = indexes["by_channel"]
    assert channel_change.old_key != channel_change.new_key
    assert channel_change.old_key is not None and channel_change.new_key is not None


async def test_insert_and_delete_in_one_transaction_leave_no_write_set(app: Application) -> None:
    async def churn(ctx: Any) -> None:
        message_id = await ctx.db.insert("messages", {"channel": "x", "body": "y"})
        await ctx.db.delete(message_id)

    before = app.latest_ts
    assert await commits_of(app, churn) == []
    assert app.latest_ts == before


async def test_query_is_invalidated_only_by_writes_in_its_range(app: Application) -> None:
    await insert_messages(app, "watched", 2)
    await insert_messages(app, "other", 2)
    read_set = await channel_read_set(app, "watched")

    async def write_other(ctx: Any) -> None:
        await ctx.db.insert("messages", {"channel": "other", "body": "z"})

    async def write_watched(ctx: Any) -> None:
        await ctx.db.insert("messages", {"channel": "watched", "body": "z"})

    (unrelated,) = await commits_of(app, write_other)
    (related,) = await commits_of(app, write_watched)
    assert not read_set.overlaps(unrelated.write_set)
    assert read_set.overlaps(related.write_set)


async def test_moving_a_document_out_of_the_range_invalidates_via_its_old_key(
    app: Application,
) -> None:
    (message_id,) = await insert_messages(app, "watched", 1)
    read_set = await channel_read_set(app, "watched")

    async def move(ctx: Any) -> None:
        await ctx.db.patch(message_id, {"channel": "elsewhere"})

    (commit,) = await commits_of(app, move)
    assert read_set.overlaps(commit.write_set)


async def test_take_records_only_the_walked_part_of_the_range(app: Application) -> None:
    ids = await insert_messages(app, "t", 5)
    read_set = await channel_read_set(app, "t", take=2)

    async def change_last(ctx: Any) -> None:
        await ctx.db.patch(ids[-1], {"body": "changed"})

    async def change_first(ctx: Any) -> None:
        await ctx.db.patch(ids[0], {"body": "changed"})

    (beyond,) = await commits_of(app, change_last)
    (within,) = await commits_of(app, change_first)
    assert not read_set.overlaps(beyond.write_set)
    assert read_set.overlaps(within.write_set)


async def test_filtered_out_documents_still_belong_to_the_read_set(app: Application) -> None:
    (message_id,) = await insert_messages(app, "f", 1)

    async def read(ctx: Any) -> Any:
        return (
            await ctx.db.query("messages")
            .filter(lambda q: q.eq(q.field("body"), "never"))
            .collect()
        )

    result = await query_result(app, read)
    assert result.value == []

    async def change(ctx: Any) -> None:
        await ctx.db.patch(message_id, {"author": "someone"})

    (commit,) = await commits_of(app, change)
    assert result.read_set is not None and result.read_set.overlaps(commit.write_set)


async def test_commit_timestamps_strictly_increase(app: Application) -> None:
    seen = []
    for _ in range(20):
        seen.append((await app.run_mutation("messages:send", {"channel": "ts", "body": "b"})).ts)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    result = await app.run_query("messages:list", {"channel": "ts"})
    assert result.ts == seen[-1]


async def test_unchanged_patch_is_not_a_write(app: Application) -> None:
    (message_id,) = await insert_messages(app, "same", 1)

    async def noop(ctx: Any) -> None:
        await ctx.db.patch(message_id, {"body": "0"})

    assert await commits_of(app, noop) == []


async def test_first_records_the_range_up_to_its_match_and_unique_all_of_it(
    app: Application,
) -> None:
    ids = await insert_messages(app, "u", 4)

    def body_2(ctx: Any) -> Any:
        return (
            ctx.db.query("messages")
            .with_index("by_channel", lambda q: q.eq("channel", "u"))
            .filter(lambda q: q.eq(q.field("body"), "2"))
        )

    async def first(ctx: Any) -> Any:
        return await body_2(ctx).first()

    async def unique(ctx: Any) -> Any:
        return await body_2(ctx).unique()

    found = await query_result(app, first)
    only = await query_result(app, unique)
    assert found.value["_id"] == only.value["_id"] == ids[2]
    assert found.read_set is not None and only.read_set is not None

    async def change(index: int) -> Any:
        async def body(ctx: Any) -> None:
            await ctx.db.patch(ids[index], {"author": "someone"})

        (commit,) = await commits_of(app, body)
        return commit.write_set

    skipped, beyond = await change(1), await change(3)
    assert found.read_set.overlaps(skipped)  # filtered out on the way: still read
    assert not found.read_set.overlaps(beyond)
    assert only.read_set.overlaps(beyond)  # unique() looked for a second match
