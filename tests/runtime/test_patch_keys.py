"""A patch computes again only the index keys of indexes over the fields it changes; the
write set still names every index's old and new key, and index entries stay exact."""

from __future__ import annotations

from typing import Any

from owlat.runtime import UNDEFINED
from owlat.runtime.application import Application
from owlat.runtime.database.commits import Commit
from owlat.runtime.schema import BY_ID
from owlat.runtime.testing import in_mutation
from tests.runtime.test_readsets import channel_read_set, commits_of, insert_messages


def assert_keys_are_the_revisions_own(app: Application, commit: Commit) -> None:
    """The commit changed one document; its write set names every index of the table with
    the key each revision has in it."""
    (document,) = commit.write_set.documents
    assert document.old is not None and document.new is not None
    table = app.catalog.table(document.table)
    changes = {change.index: change for change in commit.write_set.index_keys}
    assert set(changes) == {BY_ID, *table.indexes}
    for name, index in table.indexes.items():
        assert changes[name].old_key == index.key(document.old)
        assert changes[name].new_key == index.key(document.new)


async def people_by_age(app: Application, age: float) -> list[str]:
    async def read(ctx: Any) -> list[str]:
        rows = await (
            ctx.db.query("people")
            .with_index("by_age", lambda q: q.eq("profile.age", age))
            .collect()
        )
        return [row["_id"] for row in rows]

    return await in_mutation(app, read)


async def items_by(app: Application, tag: Any, value: Any) -> list[str]:
    async def read(ctx: Any) -> list[str]:
        by_tag = await (
            ctx.db.query("items")
            .with_index("by_tag_value", lambda q: q.eq("tag", tag).eq("value", value))
            .collect()
        )
        by_value = await (
            ctx.db.query("items").with_index("by_value", lambda q: q.eq("value", value)).collect()
        )
        tagged = [row["_id"] for row in by_value if row.get("tag") == tag]
        assert tagged == [row["_id"] for row in by_tag]  # both indexes agree
        return tagged

    return await in_mutation(app, read)


async def test_patched_keys_are_exact_in_index_entries_and_write_sets(app: Application) -> None:
    async def create(ctx: Any) -> tuple[str, str]:
        person = await ctx.db.insert("people", {"name": "a", "profile": {"age": 30.0}})
        item = await ctx.db.insert("items", {"value": 1.0, "tag": "t"})
        return person, item

    person, item = await in_mutation(app, create)
    patches: list[tuple[str, dict[str, Any]]] = [
        (person, {"name": "b"}),  # no index reads `name`
        (person, {"profile": {"age": 31.0}}),  # `profile.age` is indexed under `profile`
        (person, {"profile": {"age": 31.0, "city": "x"}}),  # same key, another value
        (item, {"tag": "u"}),  # by_tag_value only
        (item, {"value": 2.0}),  # both indexes
        (item, {"tag": UNDEFINED}),  # a removed field moves by_tag_value too
        (item, {"tag": "v"}),
    ]
    for document_id, fields in patches:

        async def patch(ctx: Any, document_id: str = document_id, fields: Any = fields) -> None:
            await ctx.db.patch(document_id, fields)

        (commit,) = await commits_of(app, patch)
        assert_keys_are_the_revisions_own(app, commit)
    assert await people_by_age(app, 30.0) == []
    assert await people_by_age(app, 31.0) == [person]
    assert await items_by(app, "t", 1.0) == []
    assert await items_by(app, "u", 2.0) == []
    assert await items_by(app, "v", 2.0) == [item]


async def test_patches_in_the_inserting_transaction_keep_index_entries_exact(
    app: Application,
) -> None:
    async def write(ctx: Any) -> list[str]:
        ids = [await ctx.db.insert("items", {"value": float(n), "tag": "t"}) for n in range(3)]
        await ctx.db.patch(ids[0], {"tag": "u"})  # held insert, by_tag_value moves
        await ctx.db.patch(ids[1], {"value": 5.0})  # held insert, both move
        await ctx.db.query("items").with_index("by_value").collect()  # hands them over
        await ctx.db.patch(ids[2], {"tag": "u"})  # in the engine, by_tag_value moves
        await ctx.db.patch(ids[0], {"value": 7.0})  # in the engine, both move
        return ids

    ids = await in_mutation(app, write)
    assert await items_by(app, "u", 7.0) == [ids[0]]
    assert await items_by(app, "t", 5.0) == [ids[1]]
    assert await items_by(app, "u", 2.0) == [ids[2]]
    for tag, value in (("t", 0.0), ("u", 0.0), ("t", 1.0), ("t", 2.0)):
        assert await items_by(app, tag, value) == []


async def test_a_range_subscription_sees_every_patch_of_its_documents_and_no_other(
    app: Application,
) -> None:
    """A patch moving a document into or out of a subscribed range invalidates it; a patch
    of unindexed fields invalidates it when the document is in the range (its content
    changed: the unchanged key is still in the write set) and not otherwise."""
    (inside,) = await insert_messages(app, "watched", 1)
    (outside,) = await insert_messages(app, "other", 1)
    read_set = await channel_read_set(app, "watched")

    async def patch(document_id: str, fields: dict[str, Any]) -> Commit:
        async def body(ctx: Any) -> None:
            await ctx.db.patch(document_id, fields)

        (commit,) = await commits_of(app, body)
        return commit

    assert not read_set.overlaps((await patch(outside, {"body": "x"})).write_set)
    assert read_set.overlaps((await patch(inside, {"body": "x"})).write_set)
    assert read_set.overlaps((await patch(outside, {"channel": "watched"})).write_set)
    assert read_set.overlaps((await patch(inside, {"channel": "gone"})).write_set)
    assert not read_set.overlaps((await patch(inside, {"author": "y"})).write_set)


async def test_insert_and_delete_write_sets_hold_every_index_key(app: Application) -> None:
    """The write set of an insert names each index's new key, of a delete its old key,
    and the index entries written with them are found through every index."""

    async def create(ctx: Any) -> str:
        return await ctx.db.insert("items", {"value": 3.0, "tag": "w"})

    commits: list[Commit] = []
    app.on_commit(commits.append)
    try:
        item = await in_mutation(app, create)
        assert await items_by(app, "w", 3.0) == [item]

        async def delete(ctx: Any) -> None:
            await ctx.db.delete(item)

        await in_mutation(app, delete)
    finally:
        app.remove_commit_listener(commits.append)
    assert await items_by(app, "w", 3.0) == []
    inserted, deleted = commits
    table = app.catalog.table("items")
    for commit, new in ((inserted, True), (deleted, False)):
        (document,) = commit.write_set.documents
        revision = document.new if new else document.old
        assert revision is not None
        changes = {change.index: change for change in commit.write_set.index_keys}
        assert set(changes) == {BY_ID, *table.indexes}
        keys = {name: index.key(revision) for name, index in table.indexes.items()}
        for name, key in {**keys, BY_ID: item.encode()}.items():
            assert (changes[name].old_key, changes[name].new_key) == (
                (None, key) if new else (key, None)
            )
