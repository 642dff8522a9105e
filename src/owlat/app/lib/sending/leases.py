"""Lease renewal: a delivering process keeps its claims alive while it works on them.

The rule. Recovery takes over a send `sending` only once its `updatedAt` is a lease old
(`sends.recover_stalled` and `stalled`, and a campaign's `delivery.recover`, `stalled`,
`_claimable` and `cancel_queued`). A delivery run holds a `Renewal`: from each claim until
the run ends (its outcomes recorded, or an error: its claims then run out a lease later),
it runs one `renew` mutation every lease/3 for the claims it still holds. `renew` is a
compare-and-set: it moves `updatedAt` only of rows still `sending` under the same claim
(`claimedAt`, `claimedBy`), so a send that recovery ended or put back, or that a later
claim took, is never taken back; the claims it no longer finds are dropped. A process
that dies renews nothing: its claims run out and recovery reads its journal as before.
On PostgreSQL with several nodes, the renewal is what protects a live node's claims from
recovery run elsewhere (its journal is not there).

The claims in hand are also told to this process's attempt journal (`Journal.hold`), so
that recovery leaves them alone however late a renewal comes (`journal.held`).

Cost: one mutation per run every lease/3 (5 minutes at the default lease), whatever the
number of its messages; a run shorter than lease/3 makes none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from owlat.app.lib.sending.journal import Journal, token
from owlat.app.lib.sending.send_states import SendStatus
from owlat.runtime import ActionCtx, FunctionReference, MutationCtx

logger = logging.getLogger("owlat.app.sending")


class Renewal:
    """The lease renewal of one delivery run (module docstring), an async context
    manager around the run: `renew` is the table's renewal mutation (`{claims,
    journal?}` → the send ids still held), `journal` the run's attempt journal."""

    def __init__(
        self,
        ctx: ActionCtx,
        renew: FunctionReference,
        lease_ms: float,
        journal: Journal | None,
    ) -> None:
        self._ctx, self._renew, self._journal = ctx, renew, journal
        self._every = lease_ms / 3000.0
        self._claims: dict[str, float] = {}  # sendId -> claimedAt
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Renewal:
        self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()  # a renewal under way ends first: a mutation is never cut short
        if self._task is not None:
            await self._task
        self._drop(list(self._claims))

    async def claimed(self, claiming: Awaitable[Any], key: str) -> Any:
        """The answer of the claim mutation `claiming`, whose claims (`{sendId,
        claimedAt}` under `key`) are renewed from now on."""
        with contextlib.nullcontext() if self._journal is None else self._journal.claiming():
            answer = await claiming
            found = [(c["sendId"], c["claimedAt"]) for c in answer.get(key) or ()]
            self._claims.update(found)
            if self._journal is not None:
                self._journal.hold(token(*claim) for claim in found)
        return answer

    async def _beat(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._every)
            if self._stop.is_set():
                return
            if not self._claims:
                continue
            claims = [{"sendId": s, "claimedAt": at} for s, at in self._claims.items()]
            args: dict[str, Any] = {"claims": claims}
            if self._journal is not None:
                args["journal"] = self._journal.name
            try:
                still = set(await self._ctx.run_mutation(self._renew, args))
            except Exception:  # a renewal missed: the next one tries again
                logger.warning("lease renewal of %d sends failed", len(claims), exc_info=True)
                continue
            self._drop([send_id for send_id in list(self._claims) if send_id not in still])

    def _drop(self, send_ids: Sequence[str]) -> None:
        gone = [(send_id, self._claims.pop(send_id)) for send_id in send_ids]
        if self._journal is not None:
            self._journal.release(token(*claim) for claim in gone)


async def renew(
    ctx: MutationCtx, claims: Sequence[Mapping[str, Any]], journal: str | None, now: float
) -> list[str]:
    """Extend the lease of each claim (`{sendId, claimedAt}`) still as it was made: the
    send `sending` under that `claimedAt` and `claimedBy` `journal` (compare-and-set,
    module docstring); the ids of those renewed."""
    renewed = []
    for claim in claims:
        row = await ctx.db.get(claim["sendId"])
        if (
            row is None
            or row["status"] != SendStatus.SENDING
            or row.get("claimedAt") != claim["claimedAt"]
            or row.get("claimedBy") != journal
        ):
            continue
        await ctx.db.patch(row["_id"], {"updatedAt": max(now, row["updatedAt"])})
        renewed.append(row["_id"])
    return renewed
