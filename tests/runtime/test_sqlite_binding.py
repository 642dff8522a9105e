"""The SQLite engine binds index keys, range bounds and document values as `bytearray`
(cheaper for the sqlite3 module than `bytes`): they must still be stored and compared as
BLOBs, byte for byte, by every statement that writes, reads, moves or deletes them."""

from __future__ import annotations

import sqlite3

import pytest

from owlat.runtime.database.sqlite import SqliteEngine

INDEX = 7
# keys with the bytes an escaped string or a terminator holds, in their memcmp order
KEYS = [b"\x00", b"\x00\xff", b"\x10a\x00", b"\x10a\x00\xff\x00", b"\x10b\x00", b"\xff"]


@pytest.fixture
def engine(sqlite_engine: SqliteEngine) -> SqliteEngine:
    return sqlite_engine


def _stored(engine: SqliteEngine) -> tuple[list[tuple[bytes, str, str]], list[tuple[str, str]]]:
    db = sqlite3.connect(engine.path)
    try:
        entries = db.execute(
            "SELECT key, typeof(key), document_id FROM owlat_index_entries ORDER BY key"
        ).fetchall()
        values = db.execute("SELECT id, typeof(value) FROM owlat_documents ORDER BY id").fetchall()
    finally:
        db.close()
    return entries, values


async def test_keys_and_values_are_blobs_and_text_in_memcmp_order(engine: SqliteEngine) -> None:
    documents = [(f"doc{i}", 10001, b'{"n":%d}' % i) for i in range(len(KEYS))]
    async with engine.write() as writer:
        await writer.insert_documents(
            documents, [(INDEX, key, f"doc{i}") for i, key in enumerate(reversed(KEYS))]
        )
    entries, values = _stored(engine)
    assert [key for key, _, _ in entries] == KEYS
    assert {kind for _, kind, _ in entries} == {"blob"}
    assert all(type(key) is bytes for key, _, _ in entries)
    assert {kind for _, kind in values} == {"text"}

    async with engine.read() as reader:
        assert await reader.get_document("doc2") == b'{"n":2}'
        rows = await reader.scan(INDEX, KEYS[1], KEYS[4], False, 10, None)
        assert [key for key, _ in rows] == KEYS[1:4]
        rows = await reader.scan(INDEX, KEYS[1], KEYS[4], True, 10, None)
        assert [key for key, _ in rows] == KEYS[3:0:-1]
        (found,) = await reader.scan_ranges(INDEX, [(KEYS[2], KEYS[3])])
        assert [key for key, _ in found] == [KEYS[2]]
        assert await reader.count_where(INDEX, KEYS[0], KEYS[5], None) == (5, [])


async def test_updates_and_deletes_find_the_keys_they_name(engine: SqliteEngine) -> None:
    async with engine.write() as writer:
        await writer.insert_documents(
            [("a", 10001, b"{}"), ("b", 10001, b"{}")],
            [(INDEX, KEYS[1], "a"), (INDEX, KEYS[3], "b")],
        )
    async with engine.write() as writer:
        await writer.update_document("a", b'{"x":1}', [(INDEX, KEYS[1])], [(INDEX, KEYS[2], "a")])
        await writer.delete_document("b", [(INDEX, KEYS[3])])
    entries, values = _stored(engine)
    assert entries == [(KEYS[2], "blob", "a")]
    assert values == [("a", "text")]
    async with engine.read() as reader:
        assert await reader.get_document("a") == b'{"x":1}'
