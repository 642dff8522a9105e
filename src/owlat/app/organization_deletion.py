"""`organizationDeletion:*`: the steps of an organization's deletion
(`lib/organization_deletion.py`) and the cron that restarts a stalled one."""

from __future__ import annotations

from typing import Any

from owlat.app.lib import organization_deletion as deletion
from owlat.runtime import MutationCtx, internal_mutation, v


@internal_mutation(args={"organizationId": v.id("organizations")})
async def step(ctx: MutationCtx, args: dict[str, Any]) -> None:
    await deletion.step(ctx, args["organizationId"])


@internal_mutation(args={"idleMs": v.optional(v.number())})
async def resume_stalled(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Restart deletions idle for `idleMs` (default `STALL_MS`); the cron's job."""
    idle = args.get("idleMs")
    return await deletion.resume_stalled(ctx, deletion.STALL_MS if idle is None else idle)
