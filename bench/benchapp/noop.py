"""`noop:run` does nothing but note (in this process's memory) when it first started."""

from __future__ import annotations

import time
from typing import Any

from owlat.runtime import internal, internal_mutation, mutation, query, v

STARTS: dict[float, float] = {}  # job number -> ms since the epoch its first attempt started


@internal_mutation(args={"i": v.number()})
async def run(ctx: Any, args: dict[str, Any]) -> None:
    STARTS.setdefault(args["i"], time.time() * 1000)


@mutation(args={"first": v.number(), "count": v.number(), "delay_ms": v.number()})
async def schedule(ctx: Any, args: dict[str, Any]) -> None:
    first = int(args["first"])
    for i in range(first, first + int(args["count"])):
        await ctx.scheduler.run_after(args["delay_ms"], internal.noop.run, {"i": float(i)})


@query(args={})
async def jobs(ctx: Any, args: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await ctx.db.system.query("_scheduled_functions").collect()
    return result
