"""`automations:*`: the organization's automations (reference §2.4, §7.6, §11.4;
triggers, steps and execution in lib/automations.py).

Every role drafts (`automations:edit`): create, update (the trigger and the steps only
while the automation is not active), remove (not while active), pause. Activating and
resuming send email to contacts, so they need `automations:manage` (owners, admins).

    create({name, description?, triggerType, triggerConfig?, steps?}) → automationId
    update({automationId, name?, description?, triggerType?, triggerConfig?, steps?})
        a change of the steps of a paused automation cancels its runs when their next
        step comes (their step indexes would point into other steps)
    activate({automationId})  draft | paused → active (needs a step and a valid trigger)
    pause({automationId})     active → paused (runs are cancelled at their next step)
    remove({automationId})    its runs and stats are deleted after, in batches (`purge`)
    list({status?}), get({automationId}), listRuns({automationId, paginationOpts}),
    stats({automationId}) → {entered, completed, cancelled, failed, active, steps: [...]}

Internal: `executeStep({runId, seq})` (one step of a run, compare-and-set on `seq`) and
`redrive` (a cron: running runs whose step is more than a minute overdue, e.g. its job
was lost, are scheduled again; the compare-and-set keeps it to one execution).
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib import automations as engine
from owlat.app.lib.audience import PAGINATION_OPTS, live_document, organization_rows, page_options
from owlat.app.lib.errors import AppError, conflict, invalid, not_found
from owlat.app.lib.session_organization import get_mutation_context, now_ms
from owlat.app.lib.templates import invalid_state
from owlat.runtime import (
    UNDEFINED,
    MutationCtx,
    QueryCtx,
    internal,
    internal_mutation,
    mutation,
    query,
    v,
)

EDIT = "automations:edit"
MANAGE = "automations:manage"
MAX_NAME = 200
MAX_DESCRIPTION = 2000
MAX_AUTOMATIONS = 200
REDRIVE_AFTER_MS = 60_000
BATCH = 200
STEP = v.object({"id": v.optional(v.string()), "type": v.string(), "config": v.any()})


def _text(value: str, field: str, limit: int, *, required: bool) -> str:
    text = value.strip()
    if (required and not text) or len(text) > limit:
        raise invalid(f"INVALID_{field.upper()}", f"{field} must be 1 to {limit} characters")
    return text


async def _automation(ctx: QueryCtx, organization_id: str, automation_id: str) -> dict[str, Any]:
    row = await live_document(ctx, "automations", organization_id, automation_id)
    if row is None:
        raise not_found("Automation")
    return row


@mutation(
    args={
        "name": v.string(),
        "description": v.optional(v.string()),
        "triggerType": v.string(),
        "triggerConfig": v.optional(v.record(v.string(), v.string())),
        "steps": v.optional(v.array(STEP)),
    }
)
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    context = await get_mutation_context(ctx, require=EDIT)
    organization_id = context.team_id
    name = _text(args["name"], "name", MAX_NAME, required=True)
    trigger = engine.clean_trigger(args["triggerType"], args.get("triggerConfig"))
    await engine.check_trigger(ctx, organization_id, trigger)
    steps = await engine.clean_steps(ctx, organization_id, args.get("steps") or [])
    if len(await organization_rows(ctx, "automations", organization_id)) >= MAX_AUTOMATIONS:
        raise conflict(
            "TOO_MANY_AUTOMATIONS", f"An organization has at most {MAX_AUTOMATIONS} automations"
        )
    now = now_ms()
    row: dict[str, Any] = {
        "organizationId": organization_id,
        "name": name,
        "triggerType": args["triggerType"],
        "triggerConfig": trigger,
        "status": "draft",
        "steps": steps,
        "stepsVersion": 0,
        "consecutiveRunFailures": 0,
        "createdBy": context.user_id,
        "createdAt": now,
        "updatedAt": now,
    }
    if args.get("description"):
        row["description"] = _text(
            args["description"], "description", MAX_DESCRIPTION, required=False
        )
    return str(await ctx.db.insert("automations", row))


@mutation(
    args={
        "automationId": v.id("automations"),
        "name": v.optional(v.string()),
        "description": v.optional(v.string()),
        "triggerType": v.optional(v.string()),
        "triggerConfig": v.optional(v.record(v.string(), v.string())),
        "steps": v.optional(v.array(STEP)),
    }
)
async def update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx, require=EDIT)
    row = await _automation(ctx, context.team_id, args["automationId"])
    changes: dict[str, Any] = {"updatedAt": now_ms()}
    if "name" in args:
        changes["name"] = _text(args["name"], "name", MAX_NAME, required=True)
    if "description" in args:
        description = _text(args["description"], "description", MAX_DESCRIPTION, required=False)
        changes["description"] = description or UNDEFINED
    structural = {"triggerType", "triggerConfig", "steps"} & set(args)
    if structural and row["status"] == "active":
        raise invalid_state("Pause the automation before changing its trigger or steps")
    if {"triggerType", "triggerConfig"} & set(args):
        trigger_type = args.get("triggerType", row["triggerType"])
        trigger = engine.clean_trigger(
            trigger_type, args.get("triggerConfig", row["triggerConfig"])
        )
        await engine.check_trigger(ctx, context.team_id, trigger)
        changes.update(triggerType=trigger_type, triggerConfig=trigger)
    if "steps" in args:
        changes["steps"] = await engine.clean_steps(ctx, context.team_id, args["steps"])
        changes["stepsVersion"] = row["stepsVersion"] + 1
    await ctx.db.patch(row["_id"], changes)
    return {k: val for k, val in {**row, **changes}.items() if val is not UNDEFINED}


@mutation(args={"automationId": v.id("automations")})
async def activate(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """draft | paused → active; the steps are checked again (a template or list may be
    gone since they were saved)."""
    context = await get_mutation_context(ctx, require=MANAGE)
    row = await _automation(ctx, context.team_id, args["automationId"])
    if row["status"] == "active":
        return
    if not row["steps"]:
        raise invalid_state("Automation must have at least one step to be activated")
    try:
        engine.clean_trigger(row["triggerType"], row["triggerConfig"])
        await engine.check_trigger(ctx, context.team_id, row["triggerConfig"])
        await engine.clean_steps(ctx, context.team_id, row["steps"])
    except AppError as error:
        raise invalid_state(f"Automation cannot be activated: {error.data}") from None
    now = now_ms()
    await ctx.db.patch(
        row["_id"],
        {
            "status": "active",
            "activatedAt": now,
            "consecutiveRunFailures": 0,
            "pausedReason": UNDEFINED,
            "updatedAt": now,
        },
    )


@mutation(args={"automationId": v.id("automations")})
async def pause(ctx: MutationCtx, args: dict[str, Any]) -> None:
    context = await get_mutation_context(ctx, require=EDIT)
    row = await _automation(ctx, context.team_id, args["automationId"])
    if row["status"] == "paused":
        return
    if row["status"] != "active":
        raise invalid_state("Only an active automation can be paused")
    now = now_ms()
    await ctx.db.patch(row["_id"], {"status": "paused", "pausedAt": now, "updatedAt": now})


@mutation(args={"automationId": v.id("automations")})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    context = await get_mutation_context(ctx, require=EDIT)
    row = await _automation(ctx, context.team_id, args["automationId"])
    if row["status"] == "active":
        raise invalid_state("Pause the automation before deleting it")
    await ctx.db.delete(row["_id"])
    await ctx.scheduler.run_after(0, internal.automations.purge, {"automationId": row["_id"]})


@internal_mutation(args={"automationId": v.id("automations")})
async def purge(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Delete a deleted automation's runs and stats, `BATCH` a time (continues itself)."""
    deleted = 0
    for table, index in (
        ("automationRuns", "by_automation"),
        ("automationStats", "by_automation_key"),
    ):
        if deleted == BATCH:
            break
        rows = await (
            ctx.db.query(table)
            .with_index(index, lambda q: q.eq("automationId", args["automationId"]))
            .take(BATCH - deleted)
        )
        for dependent in rows:
            await ctx.db.delete(dependent["_id"])
        deleted += len(rows)
    if deleted == BATCH:
        await ctx.scheduler.run_after(0, internal.automations.purge, args)
    return deleted


@query(args={"status": v.optional(v.string())})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    context = await get_mutation_context(ctx)
    rows = await organization_rows(ctx, "automations", context.team_id)
    if args.get("status") is not None:
        rows = [row for row in rows if row["status"] == args["status"]]
    return sorted(rows, key=lambda row: row["createdAt"])


@query(args={"automationId": v.id("automations")})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx)
    return await _automation(ctx, context.team_id, args["automationId"])


@query(args={"automationId": v.id("automations"), "paginationOpts": PAGINATION_OPTS})
async def list_runs(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A page of the automation's runs, newest first."""
    context = await get_mutation_context(ctx)
    row = await _automation(ctx, context.team_id, args["automationId"])
    return await (
        ctx.db.query("automationRuns")
        .with_index("by_automation", lambda q: q.eq("automationId", row["_id"]))
        .order("desc")
        .paginate(page_options(args["paginationOpts"]))
    )


@query(args={"automationId": v.id("automations")})
async def stats(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Runs entered, completed, cancelled, failed and still active; per step (in order)
    its id, type and counts: completed, failed, skipped (jumped over), retried."""
    context = await get_mutation_context(ctx)
    row = await _automation(ctx, context.team_id, args["automationId"])
    rows = await (
        ctx.db.query("automationStats")
        .with_index("by_automation_key", lambda q: q.eq("automationId", row["_id"]))
        .collect()
    )
    counts = {stat["key"]: stat["counts"] for stat in rows}
    runs = counts.get("run", {})
    totals = {name: runs.get(name, 0) for name in ("entered", "completed", "cancelled", "failed")}
    finished = totals["completed"] + totals["cancelled"] + totals["failed"]
    steps = [
        {
            "id": step["id"],
            "type": step["type"],
            **{
                name: counts.get(step["id"], {}).get(name, 0)
                for name in ("completed", "failed", "skipped", "retried")
            },
        }
        for step in row["steps"]
    ]
    return {**totals, "active": totals["entered"] - finished, "steps": steps}


# -- execution -------------------------------------------------------------------------------


async def _finish(
    ctx: MutationCtx,
    automation: dict[str, Any],
    run: dict[str, Any],
    status: str,
    error: str | None = None,
) -> None:
    now = now_ms()
    changes: dict[str, Any] = {
        "status": status,
        "seq": run["seq"] + 1,
        "completedAt": now,
        "nextStepAt": UNDEFINED,
        "updatedAt": now,
    }
    if error is not None:
        changes["error"] = error
    await ctx.db.patch(run["_id"], changes)
    await engine.bump(ctx, automation, "run", status)
    failures = int(automation["consecutiveRunFailures"])
    if status == "completed" and failures:
        await ctx.db.patch(automation["_id"], {"consecutiveRunFailures": 0})
    if status == "failed":
        patch: dict[str, Any] = {"consecutiveRunFailures": failures + 1}
        if failures + 1 >= engine.MAX_CONSECUTIVE_FAILURES and automation["status"] == "active":
            patch.update(
                status="paused",
                pausedAt=now,
                pausedReason=f"{failures + 1} runs in a row failed; last: {error}",
                updatedAt=now,
            )
        await ctx.db.patch(automation["_id"], patch)


@internal_mutation(args={"runId": v.id("automationRuns"), "seq": v.number()})
async def execute_step(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Execute the run's current step if the run still has `seq` (module docstring)."""
    run = await ctx.db.get(args["runId"])
    if run is None or run["status"] != "running" or run["seq"] != args["seq"]:
        return
    run = dict(run)
    automation = await ctx.db.get(run["automationId"])
    if automation is None:
        await ctx.db.delete(run["_id"])
        return
    automation = dict(automation)
    if automation["status"] != "active":
        await _finish(
            ctx, automation, run, "cancelled", f"The automation is {automation['status']}"
        )
        return
    if run["stepsVersion"] != automation["stepsVersion"]:
        await _finish(ctx, automation, run, "cancelled", "The automation's steps changed")
        return
    contact = await ctx.db.get(run["contactId"])
    if contact is None or contact.get("deletedAt") is not None:
        await _finish(ctx, automation, run, "cancelled", "The contact was deleted")
        return
    if run["stepsExecuted"] >= engine.MAX_STEPS_EXECUTED:
        await _finish(
            ctx,
            automation,
            run,
            "failed",
            f"The run executed {engine.MAX_STEPS_EXECUTED} steps (a loop?)",
        )
        return
    steps, index = automation["steps"], int(run["stepIndex"])
    step = steps[index]
    now = now_ms()
    try:
        following = await engine.run_step(ctx, automation, run, dict(contact))
    except AppError as error:
        message = f"steps[{index}] ({step['type']}): {error.data}"
        retries = int(run["retries"])
        if retries < len(engine.RETRY_DELAYS_MS):
            delay = engine.RETRY_DELAYS_MS[retries]
            await ctx.db.patch(
                run["_id"],
                {
                    "seq": run["seq"] + 1,
                    "retries": retries + 1,
                    "error": message,
                    "nextStepAt": now + delay,
                    "updatedAt": now,
                },
            )
            await engine.bump(ctx, automation, step["id"], "retried")
            await engine.schedule(ctx, str(run["_id"]), run["seq"] + 1, delay)
            return
        await engine.bump(ctx, automation, step["id"], "failed")
        await _finish(ctx, automation, run, "failed", message)
        return
    await engine.bump(ctx, automation, step["id"], "completed")
    for skipped in steps[index + 1 : following]:
        await engine.bump(ctx, automation, skipped["id"], "skipped")
    run = {**run, "stepsExecuted": run["stepsExecuted"] + 1}
    if following >= len(steps):
        await ctx.db.patch(run["_id"], {"stepsExecuted": run["stepsExecuted"]})
        await _finish(ctx, automation, run, "completed")
        return
    entry = engine.entry_delay_ms(steps[following])
    await ctx.db.patch(
        run["_id"],
        {
            "stepIndex": following,
            "seq": run["seq"] + 1,
            "retries": 0,
            "stepsExecuted": run["stepsExecuted"],
            "nextStepAt": now + entry,
            "error": UNDEFINED,
            "updatedAt": now,
        },
    )
    await engine.schedule(ctx, str(run["_id"]), run["seq"] + 1, entry)


@internal_mutation(args={})
async def redrive(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Schedule again the steps of running runs more than a minute overdue."""
    now = now_ms()
    overdue = await (
        ctx.db.query("automationRuns")
        .with_index(
            "by_status_next",
            lambda q: q.eq("status", "running").lt("nextStepAt", now - REDRIVE_AFTER_MS),
        )
        .take(BATCH)
    )
    for run in overdue:
        await ctx.db.patch(run["_id"], {"nextStepAt": now})
        await engine.schedule(ctx, str(run["_id"]), run["seq"], 0)
    return len(overdue)
