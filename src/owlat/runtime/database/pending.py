"""Inserts a write transaction holds back from the engine until a read could see them.

A mutation that inserts many documents (an import's batch) would otherwise make two engine
calls per document (its row, then its index entries). Held here, they reach the engine
together: one call for every held document and one for all their index entries (SQLite:
two executemany; PostgreSQL: multi-row statements). The transaction hands them over
(`drain`) before anything that could observe them: a range read of an index in which a
held document has a key inside the range, a savepoint, and the commit. A point read of a
held document is answered from the transaction's own record of what it wrote, and
patching or deleting a held document changes what is held, so neither needs the engine.
"""

from __future__ import annotations

import bisect

# (index_id, key) of one index entry of a held document
_Entry = tuple[int, bytes]


class PendingInserts:
    """New documents and their index entries, not yet written to the engine."""

    __slots__ = ("_documents", "_keys")

    def __init__(self) -> None:
        # document id -> (table number, stored value, its index entries)
        self._documents: dict[str, tuple[int, bytes, list[_Entry]]] = {}
        self._keys: dict[int, list[bytes]] = {}  # index id -> held keys, sorted

    def __bool__(self) -> bool:
        return bool(self._documents)

    def __contains__(self, document_id: str) -> bool:
        return document_id in self._documents

    def add(self, document_id: str, table_number: int, value: bytes, entries: list[_Entry]) -> None:
        """Hold a new document with its index entries."""
        self._documents[document_id] = (table_number, value, entries)
        self._hold(entries)

    def replace(
        self, document_id: str, value: bytes, changed: list[tuple[int, bytes, bytes]]
    ) -> None:
        """A held document's new value; `changed` lists `(index_id, old_key, new_key)`."""
        table_number, _, entries = self._documents[document_id]
        moved = {index_id: new_key for index_id, _, new_key in changed}
        for index_id, old_key, _ in changed:
            self._drop_key(index_id, old_key)
        self._hold(list(moved.items()))
        entries = [(index_id, moved.get(index_id, key)) for index_id, key in entries]
        self._documents[document_id] = (table_number, value, entries)

    def discard(self, document_id: str) -> None:
        """Forget a held document (deleted by the transaction that inserted it)."""
        _, _, entries = self._documents.pop(document_id)
        for index_id, key in entries:
            self._drop_key(index_id, key)

    def in_range(self, index_id: int, low: bytes, high: bytes) -> bool:
        """Whether a held document has a key in `[low, high)` of the index."""
        keys = self._keys.get(index_id)
        if not keys:
            return False
        position = bisect.bisect_left(keys, low)
        return position < len(keys) and keys[position] < high

    def drain(self) -> tuple[list[tuple[str, int, bytes]], list[tuple[int, bytes, str]]]:
        """Everything held, as engine rows (documents, then index entries); holds nothing
        afterwards."""
        documents: list[tuple[str, int, bytes]] = []
        entries: list[tuple[int, bytes, str]] = []
        for document_id, (number, value, held) in self._documents.items():
            documents.append((document_id, number, value))
            entries.extend([(index_id, key, document_id) for index_id, key in held])
        self._documents.clear()
        self._keys.clear()
        return documents, entries

    def _hold(self, entries: list[_Entry]) -> None:
        """Add `(index_id, key)` entries to the held keys (one call per document)."""
        held = self._keys
        for index_id, key in entries:
            keys = held.get(index_id)
            if not keys:  # none held yet in this index, or all dropped
                held[index_id] = [key]
            elif keys[-1] < key:
                keys.append(key)  # the common case: keys that grow (creation time, new ids)
            else:
                bisect.insort(keys, key)

    def _drop_key(self, index_id: int, key: bytes) -> None:
        keys = self._keys[index_id]
        del keys[bisect.bisect_left(keys, key)]
