"""The parent counters a batch of tracking events moves, summed and moved once.

An event applied to a send (`lib/sending/feedback.py`) moves counters of the send's parent
through its table's `count` (`send_tables.SendTable`): a campaign's `campaignStats`
(`delivered`, `opened`, `humanOpened`, `clicked` on a send's first open and click). One
`tracking:record` mutation applies the events of many concurrent requests, and the sends
of one campaign share its stats document: moved once per event, that document would be
read, patched and validated up to four times per event. Instead, `FoldedCounts` hands
`feedback.apply` tables whose `count` only adds the delta to a running sum, and `apply`
then moves each (parent, counter) once by the sum, at the end of the same mutation.

The result is the same document in the same transaction: counting is addition, and
nothing the events do reads the parent counters. Which sends share a parent is what the
table's `count` reads of a send (`COUNTED_BY`); a table not listed there counts each event
as it comes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from owlat.app.lib.sending.send_tables import SendTable
from owlat.runtime import MutationCtx

# table → the fields of a send its `count` reads to find (and move) the parent's counters:
# `campaigns.walk.count_feedback` reads the campaign and the A/B variant
COUNTED_BY: dict[str, tuple[str, ...]] = {"emailSends": ("campaignId", "abVariant")}


class FoldedCounts:
    """The counter moves of one batch (module docstring): `table(t)` to apply events
    with, then `apply(ctx)` once, in the same mutation."""

    def __init__(self) -> None:
        self._tables: dict[str, SendTable] = {}
        # (table, parent fields, counter) → [a send of that parent, the summed delta]
        self._moves: dict[tuple[str, tuple[Any, ...], str], list[Any]] = {}

    def table(self, table: SendTable) -> SendTable:
        """`table`, counting into this batch when its parents are known (`COUNTED_BY`)."""
        fields = COUNTED_BY.get(table.name)
        if table.count is None or fields is None:
            return table
        folded = self._tables.get(table.name)
        if folded is None:

            async def count(
                ctx: MutationCtx, send: Mapping[str, Any], counter: str, delta: int
            ) -> None:
                key = (table.name, tuple(send.get(f) for f in fields), counter)
                move = self._moves.setdefault(key, [send, 0])
                move[1] += delta

            folded = self._tables[table.name] = dataclasses.replace(table, count=count)
        return folded

    async def apply(self, ctx: MutationCtx, tables: Mapping[str, SendTable]) -> None:
        """Move every counter by its sum, through `tables[name].count` (the real ones)."""
        moves, self._moves = self._moves, {}
        for (name, _, counter), (send, delta) in moves.items():
            count = tables[name].count
            if delta and count is not None:
                await count(ctx, send, counter, delta)
