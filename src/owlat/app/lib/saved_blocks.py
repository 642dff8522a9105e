"""Saved blocks (`emailBlocks`) and the propagation of their changes into templates.

A saved block's content is `EditorBlock[]` JSON like a template's (checked the same way,
paths `content[0]...`), with at least one block and no saved-block references of its own.

Propagation. Changing a block's content or name, or deleting it, must reach every
template that links it (`linkedBlockIds`): email templates and transactional emails alike,
and an organization may have more of those than one transaction should touch. So the
change starts a job, kept on the block (`propagation {kind, phase, table, cursor,
updatedAt}`), that walks the linking templates of each table (`TABLES`, in order) in pages
of its `by_org` index (filtered on `linkedBlockIds`; `cursor` is where the next page
starts):
- `sync` (content or name changed): phase `mark` sets `htmlRenderState.stale` on each
  linking template (`MARK_BATCH` a step); phase `render` re-renders each
  (`templates.rerender`: the groups take the block's new blocks; `RENDER_BATCH` a step);
- `detach` (block deleted: `deletedAt` set, hidden at once): phase `render` only, which
  drops the references (the blocks stay in the templates); the last step deletes the block.
A phase walks every table before the next phase starts.
The changing mutation runs the first step itself (so up to `MARK_BATCH` templates are
marked stale in the same transaction as the change); each step is one mutation that
advances `cursor` and schedules the next, so a crash rolls a step back and the scheduler
runs it again; a step carries the block's `revision` and does nothing once the block moved
on (a newer change restarted the walk, or a resume took over). A step that fails leaves
the job where it was: `resume_stalled` (a cron) restarts jobs idle for `STALL_MS` under a
new revision. A template that no longer renders with the new block keeps its HTML, stays
stale and records the failure (`htmlRenderState.failureCount`); the walk goes on.
"""

from __future__ import annotations

import json
from typing import Any

from owlat.app.lib import stalled_jobs
from owlat.app.lib.block_tree import saved_block_refs
from owlat.app.lib.errors import not_found
from owlat.app.lib.rendering import InvalidContent, validate_content
from owlat.app.lib.session_organization import now_ms
from owlat.app.lib.templates import compact_json, rerender
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, internal

MAX_NAME = 200
MAX_DESCRIPTION = 5000
MARK_BATCH = 200  # a marked template costs two reads (get, patch) and one write
RENDER_BATCH = 20  # a render costs a few milliseconds of CPU
STALL_MS = 60_000
RESUME_BATCH = 100
TABLES = ("emailTemplates", "transactionalEmails")  # what may link a saved block


def clean_content(content: str) -> str:
    """Saved-block content, checked (errors name the path), as compact JSON."""
    validate_content(content)
    blocks = json.loads(content)
    if not blocks:
        raise InvalidContent("content", "a saved block holds at least one block")
    refs = saved_block_refs(blocks)
    if refs:
        raise InvalidContent(refs[0][0], "a saved block cannot link other saved blocks")
    return compact_json(blocks)


async def find_block(ctx: QueryCtx, organization_id: str, block_id: str) -> dict[str, Any] | None:
    """The organization's live saved block, or None."""
    normalized = ctx.db.normalize_id("emailBlocks", block_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id or found.get("deletedAt"):
        return None
    return dict(found)


async def block_of(ctx: QueryCtx, organization_id: str, block_id: str) -> dict[str, Any]:
    found = await find_block(ctx, organization_id, block_id)
    if found is None:
        raise not_found("Saved block")
    return found


def _linking(ctx: QueryCtx, block: dict[str, Any], table: str) -> Any:
    return (
        ctx.db.query(table)
        .with_index("by_org", lambda q: q.eq("organizationId", block["organizationId"]))
        .filter(lambda q: q.includes(q.field("linkedBlockIds"), block["_id"]))
    )


async def start_propagation(ctx: MutationCtx, block: dict[str, Any], kind: str) -> None:
    """Start carrying `block`'s change (`sync`) or deletion (`detach`) into its templates;
    runs the first step now. `block` is as stored before this call's `revision` bump."""
    revision = block["revision"] + 1
    job = {
        "kind": kind,
        "phase": "mark" if kind == "sync" else "render",
        "table": TABLES[0],
        "cursor": None,
        "updatedAt": now_ms(),
    }
    await ctx.db.patch(block["_id"], {"revision": revision, "propagation": job})
    await step(ctx, block["_id"], revision)


async def step(ctx: MutationCtx, block_id: str, revision: int) -> None:
    """One batch of the block's propagation (see the module docstring): a page of the
    table being walked, continued into the next table while the batch is not full."""
    block = await ctx.db.get(block_id)
    if block is None or block["revision"] != revision or block.get("propagation") is None:
        return
    block = dict(block)
    job = dict(block["propagation"])
    marking = job["phase"] == "mark"
    budget = MARK_BATCH if marking else RENDER_BATCH
    while True:
        table = job.get("table", TABLES[0])
        page = await _linking(ctx, block, table).paginate(
            {"numItems": budget, "cursor": job["cursor"]}
        )
        for template in page["page"]:
            if not marking:
                await rerender(ctx, dict(template))
            elif (template.get("htmlRenderState") or {}).get("stale") is not True:
                await ctx.db.patch(
                    template["_id"], {"htmlRenderState": {"stale": True, "failureCount": 0}}
                )
        budget -= len(page["page"])
        if not page["isDone"]:
            job["cursor"] = page["continueCursor"]
            break
        if table != TABLES[-1]:
            job.update(table=TABLES[TABLES.index(table) + 1], cursor=None)
            if budget > 0:
                continue
            break
        if marking:
            job.update(phase="render", table=TABLES[0], cursor=None)
            break
        if job["kind"] == "detach":
            await ctx.db.delete(block_id)
        else:
            await ctx.db.patch(block_id, {"propagation": UNDEFINED})
        return
    job["updatedAt"] = now_ms()
    await ctx.db.patch(block_id, {"propagation": job})
    await ctx.scheduler.run_after(
        0, internal.email_blocks.propagate, {"blockId": block_id, "revision": revision}
    )


async def resume_stalled(ctx: MutationCtx, idle_ms: float) -> int:
    """Restart propagations that have not advanced for `idle_ms`; how many."""
    before = now_ms() - idle_ms
    stalled = await stalled_jobs.stalled(
        ctx, "emailBlocks", "by_propagation", "propagation", before, RESUME_BATCH
    )
    for block in stalled:
        revision = block["revision"] + 1
        job = {**block["propagation"], "updatedAt": now_ms()}
        await ctx.db.patch(block["_id"], {"revision": revision, "propagation": job})
        await ctx.scheduler.run_after(
            0, internal.email_blocks.propagate, {"blockId": block["_id"], "revision": revision}
        )
    return len(stalled)
