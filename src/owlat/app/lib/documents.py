"""Reading back a document the function itself has just written."""

from __future__ import annotations

from typing import Any

from owlat.runtime import QueryCtx


async def reread(ctx: QueryCtx, document_id: str) -> dict[str, Any]:
    """The document `document_id` as the transaction sees it now: one it inserted or
    patched, which therefore exists (a missing one is a bug, not the caller's mistake)."""
    found = await ctx.db.get(document_id)
    if found is None:
        raise LookupError(f"Document {document_id} was written in this transaction but is gone")
    return dict(found)
