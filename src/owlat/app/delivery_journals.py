"""The attempt journals of delivering processes (`lib/sending/journal.py`): the ones
nothing needs any more are deleted (a cron).

A dead process's journal is needed while a send it claimed is `sending`: recovery reads
it once the send's lease has passed. Every claim of a dead process is older than the
moment it was first seen dead, so a lease after that moment each of its sends still
`sending` is past its lease and named by `stalled` (both send tables): a journal seen
dead for a lease and named by none of them is deleted. One that recovery would still
have read (beyond the `stalled` limits, or a paused campaign's send) is then missing,
and its sends are failed DELIVERY_UNCERTAIN as without a journal: never sent twice.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib import instance
from owlat.app.lib.sending import journal
from owlat.app.lib.sending.sends import lease_ms
from owlat.runtime import ActionCtx, internal, internal_action


@internal_action(args={})
async def sweep(ctx: ActionCtx, args: dict[str, Any]) -> list[str]:
    """Delete the journals nothing needs (module docstring); their names."""
    named: set[str] = set()
    for stalled in (internal.campaign_sends.stalled, internal.transactional_sends.stalled):
        named.update(row["claimedBy"] for row in await ctx.run_query(stalled, {}))
    return journal.sweep(instance.current().data_dir, named, lease_ms())
