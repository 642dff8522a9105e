"""Patches of one mutation merged per document and written once, at the end.

A batch of tracking events (`tracking:record`) touches the same few documents many times:
a send's first open patches its contact twice (`softBounceCount`, then `hasOpened`), an
open and a click of one send in the same batch patch the send twice. Each `ctx.db.patch`
re-reads, re-validates and re-indexes the whole document and runs its table's triggers,
so `PendingWrites` keeps the documents it read (`get`) with the changes made so far
(`patch`: visible to the next `get` at once) and writes each touched document with one
patch of all its changes (`flush`), in the same mutation.

The committed result is the same: a patch is a shallow merge, so merged changes give the
same document; the triggers that follow these tables (segment counts, webhooks,
automations) compare the document before and after, and their effects add up the same over
one write as over several. The caller must `flush` before anything reads these documents
other than through `get` (an index query would see them unchanged).
"""

from __future__ import annotations

from typing import Any

from owlat.runtime import MutationCtx


class PendingWrites:
    """The documents one mutation reads and patches through it (module docstring)."""

    def __init__(self, ctx: MutationCtx) -> None:
        self._ctx = ctx
        self._documents: dict[str, dict[str, Any] | None] = {}  # as read, with the changes
        self._changes: dict[str, dict[str, Any]] = {}  # what `flush` writes, per document

    async def get(self, document_id: str) -> dict[str, Any] | None:
        """The document with the changes patched so far (read once; the same dict each
        time: a caller that keeps it sees later patches)."""
        if document_id not in self._documents:
            found = await self._ctx.db.get(document_id)
            self._documents[document_id] = None if found is None else dict(found)
        return self._documents[document_id]

    def patch(self, document_id: str, changes: dict[str, Any]) -> None:
        """Merge `changes` into the document (at once for `get`, in the database at
        `flush`)."""
        document = self._documents.get(document_id)
        if document is not None:
            document.update(changes)
        self._changes.setdefault(document_id, {}).update(changes)

    async def flush(self) -> None:
        """Write each changed document with one patch."""
        changes, self._changes = self._changes, {}
        for document_id, fields in changes.items():
            await self._ctx.db.patch(document_id, fields)
