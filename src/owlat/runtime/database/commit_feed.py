"""Commit feeds: how an Application learns of commits, its own and other nodes', in order.

The rule a feed follows is `engine.CommitFeed`'s: every commit exactly once, in timestamp
order, and an own commit delivered before `committed(commit)` returns.

- `InProcessCommitFeed` (SQLite: one process writes the file at a time through its own
  Application, so there is nobody else to hear from): delivers each own commit at once.
- PostgreSQL's feed (`_postgres_feed.py`) reads the commit log `owlat_commits`, which
  holds every node's commits with their encoded write sets: woken by `NOTIFY` (the payload
  is the timestamp) or by an own commit, it fetches the commits after the last one it
  delivered, in timestamp order, and delivers them.

`encode_write_set` / `decode_write_set` are the commit log's format: JSON with the index
keys (base64) of every change, which is all reactivity needs, and for each document its
table, id and whether it existed before and after. A decoded document revision is a stub
`{"_id": id}`: other nodes learn *what* changed, not the contents.
"""

from __future__ import annotations

import base64

import orjson

from owlat.runtime.database.commits import Commit, DocumentChange, IndexKeyChange, WriteSet
from owlat.runtime.database.engine import Deliver


class InProcessCommitFeed:
    """The feed of an engine written by one process: its own commits, delivered at once."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, after_ts: int, deliver: Deliver) -> None:
        self._deliver = deliver

    async def committed(self, commit: Commit) -> None:
        if self._deliver is not None:
            self._deliver(commit)

    async def close(self) -> None:
        self._deliver = None


def _b64(key: bytes | None) -> str | None:
    return None if key is None else base64.b64encode(key).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def encode_write_set(write_set: WriteSet) -> bytes:
    """A write set as stored in the commit log."""
    return orjson.dumps(
        {
            "d": [
                [change.table, change.id, change.old is not None, change.new is not None]
                for change in write_set.documents
            ],
            "k": [
                [change.table, change.index, _b64(change.old_key), _b64(change.new_key)]
                for change in write_set.index_keys
            ],
        }
    )


def decode_write_set(data: bytes) -> WriteSet:
    """A write set from the commit log (document revisions as `{"_id": id}` stubs)."""
    decoded = orjson.loads(data)
    documents = tuple(
        DocumentChange(
            table,
            document_id,
            {"_id": document_id} if old else None,
            {"_id": document_id} if new else None,
        )
        for table, document_id, old, new in decoded["d"]
    )
    keys = tuple(
        IndexKeyChange(table, index, _unb64(old), _unb64(new))
        for table, index, old, new in decoded["k"]
    )
    return WriteSet(documents, keys)
