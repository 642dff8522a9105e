"""Saved blocks (reference §7.4, `emailBlocks`): blocks templates embed by reference.

A template links a saved block by the `savedBlockRef` of the blocks inserted from it; a
change to the block's content or name, or its deletion, is carried into every linking
template by a batched, resumable job (`lib/saved_blocks.py`: the templates are marked
`htmlRenderState.stale`, then re-rendered; a deleted block's references are dropped and its
blocks stay). `get` shows the job (`propagation`) while it runs. `preview` renders the
block alone with the organization's theme, as a template's preview (for a sample contact).
Reads: any member; writes: `templates:manage` (a change re-renders published templates too).
"""

from __future__ import annotations

import builtins
import json
from typing import Any

from owlat.app.lib.errors import invalid
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.rendering import (
    compile_template,
    personalize,
    render_template,
    validate_content,
)
from owlat.app.lib.saved_blocks import (
    MAX_DESCRIPTION,
    MAX_NAME,
    STALL_MS,
    block_of,
    clean_content,
    find_block,
    resume_stalled,
    start_propagation,
    step,
)
from owlat.app.lib.session_organization import (
    MutationContext,
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.lib.templates import SAMPLE_CONTACT, preview_view, theme_of
from owlat.runtime import (
    UNDEFINED,
    MutationCtx,
    QueryCtx,
    internal_mutation,
    mutation,
    query,
    v,
)

SORT = v.union(v.literal("recent"), v.literal("mostUsed"), v.literal("name"))


async def _manager(ctx: MutationCtx) -> MutationContext:
    context = await get_mutation_context(ctx)
    require_permission(context.role, "templates:manage")
    return context


def _name(value: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_NAME:
        raise invalid("INVALID_INPUT", f"name: must be 1 to {MAX_NAME} characters")
    return value


def _description(value: str) -> str | None:
    value = value.strip()
    if len(value) > MAX_DESCRIPTION:
        raise invalid("INVALID_INPUT", f"description: must be at most {MAX_DESCRIPTION} characters")
    return value or None


def _view(block: dict[str, Any]) -> dict[str, Any]:
    return {**block, "blockCount": len(json.loads(block["content"]))}


# -- reads -------------------------------------------------------------------------------------


@query(args={"search": v.optional(v.string()), "sortBy": v.optional(SORT)})
async def list(  # shadows the builtin
    ctx: QueryCtx, args: dict[str, Any]
) -> builtins.list[dict[str, Any]]:
    """The organization's saved blocks: `search` finds a piece of the name or description;
    sorted by `sortBy` (recent: last changed first, the default; mostUsed; name)."""
    organization_id = await get_team_id_from_session(ctx)
    rows = await (
        ctx.db.query("emailBlocks")
        .with_index("by_org_updated", lambda q: q.eq("organizationId", organization_id))
        .order("desc")
        .filter(lambda q: q.lt(q.field("deletedAt"), None))
        .collect()
    )
    blocks = [dict(row) for row in rows]
    search = (args.get("search") or "").strip().lower()
    if search:
        blocks = [
            b for b in blocks if search in f"{b['name']}\n{b.get('description') or ''}".lower()
        ]
    if args.get("sortBy") == "mostUsed":
        blocks.sort(key=lambda b: -b["usageCount"])
    elif args.get("sortBy") == "name":
        blocks.sort(key=lambda b: b["name"].lower())
    return [_view(b) for b in blocks]


@query(args={"blockId": v.string()})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The saved block (with its running `propagation`, if any), or None."""
    organization_id = await get_team_id_from_session(ctx)
    found = await find_block(ctx, organization_id, args["blockId"])
    return None if found is None else _view(found)


@query(args={"blockId": v.string()})
async def preview(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The block rendered alone (no subject) for a sample contact, in the shape of
    `emailTemplates:preview`."""
    organization_id = await get_team_id_from_session(ctx)
    block = await block_of(ctx, organization_id, args["blockId"])
    rendered = render_template(
        validate_content(block["content"]),
        subject="",
        theme=await theme_of(ctx, organization_id),
    )
    message = personalize(compile_template(rendered), dict(SAMPLE_CONTACT))
    return await preview_view(ctx, organization_id, block, message)


# -- writes ------------------------------------------------------------------------------------


@mutation(args={"name": v.string(), "description": v.optional(v.string()), "content": v.string()})
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    context = await _manager(ctx)
    now = now_ms()
    block: dict[str, Any] = {
        "organizationId": context.team_id,
        "name": _name(args["name"]),
        "content": clean_content(args["content"]),
        "usageCount": 0,
        "revision": 0,
        "createdBy": context.user_id,
        "createdAt": now,
        "updatedAt": now,
    }
    description = _description(args.get("description") or "")
    if description is not None:
        block["description"] = description
    return str(await ctx.db.insert("emailBlocks", block))


@mutation(
    args={
        "blockId": v.string(),
        "name": v.optional(v.string()),
        "description": v.optional(v.string()),
        "content": v.optional(v.string()),
    }
)
async def update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Change the fields passed; a new content or name is carried into every linking
    template (see the module docstring). Returns the block."""
    context = await _manager(ctx)
    block = await block_of(ctx, context.team_id, args["blockId"])
    patch: dict[str, Any] = {"updatedAt": now_ms()}
    if args.get("name") is not None:
        patch["name"] = _name(args["name"])
    if args.get("description") is not None:
        patch["description"] = _description(args["description"]) or UNDEFINED
    if args.get("content") is not None:
        patch["content"] = clean_content(args["content"])
    await ctx.db.patch(block["_id"], patch)
    if any(k in patch and patch[k] != block[k] for k in ("name", "content")):
        await start_propagation(ctx, block, "sync")
    return _view(await block_of(ctx, context.team_id, block["_id"]))


@mutation(args={"blockId": v.string()})
async def duplicate(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A copy named "<name> (Copy)", linked by no template; returns its id."""
    context = await _manager(ctx)
    block = await block_of(ctx, context.team_id, args["blockId"])
    now = now_ms()
    copy = {k: val for k, val in block.items() if k in ("organizationId", "description", "content")}
    copy.update(
        name=f"{block['name']} (Copy)"[:MAX_NAME],
        usageCount=0,
        revision=0,
        createdBy=context.user_id,
        createdAt=now,
        updatedAt=now,
    )
    return str(await ctx.db.insert("emailBlocks", copy))


@mutation(args={"blockId": v.string()})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete the saved block: hidden at once; the templates that link it keep its blocks
    (as their own) and lose the reference, in batches; then the block is gone."""
    context = await _manager(ctx)
    block = await block_of(ctx, context.team_id, args["blockId"])
    now = now_ms()
    await ctx.db.patch(block["_id"], {"deletedAt": now, "updatedAt": now})
    await start_propagation(ctx, block, "detach")


# -- the propagation job -----------------------------------------------------------------------


@internal_mutation(args={"blockId": v.id("emailBlocks"), "revision": v.number()})
async def propagate(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """One step of a block's propagation (scheduled by the previous one)."""
    await step(ctx, args["blockId"], int(args["revision"]))


@internal_mutation(args={"idleMs": v.optional(v.number())})
async def resume_stalled_propagations(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Restart propagations idle for `idleMs` (default `STALL_MS`); the cron's job."""
    idle = args.get("idleMs")
    return await resume_stalled(ctx, STALL_MS if idle is None else idle)
