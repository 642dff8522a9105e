"""CSV imports of contacts (reference §7.1 importBatch, streamed from a stored file).

A run: `generateUploadUrl` → POST the file → `start({storageId, mapping, listId?,
onDuplicate})` creates a `contactImports` document (`queued`) and schedules the worker
(`run`, an internal action), which hands the file's rows, batch by batch, to ONE mutation
each (`apply_batch`; how the file is read and rows become contacts and list members:
lib/contact_import.py). A batch applies once (its start offset must be the document's), so
a crash or a re-run resumes exactly where the last committed batch ended. A row whose
quoted field is never closed is a row error, and the lines after it are still read as rows
(lib/csv_import.py). Imports do not fire `contact.created` webhooks or automations
(reference §16 6b).

Tenancy and size: an upload URL names the organization it was generated for as the file's
owner (`_storage.owner`), so an import starts only from a file uploaded for its own
organization (any other is "File not found"); the URL refuses a file over
`OWLAT_IMPORT_MAX_BYTES` while it streams (413). Reads: any member; writes:
`contacts:manage`. The internal `*ForOrganization`/`organizationOf`/`progress`/`exportPage`
functions serve the CLI (`owlat contacts import|export`), which calls them with the admin
key.

Workers: a server start resumes every queued or running import at once (a restart killed
its worker), and a cron any that has not advanced for `STALL_MS`; each resume gives the
import a worker of the next generation (`worker`), and an older one stops at its next
batch.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib import contact_import, csv_import, instance
from owlat.app.lib.audience import (
    PAGINATION_OPTS,
    live_document,
    page_options,
    property_definitions,
)
from owlat.app.lib.errors import AppError, invalid, not_found
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.lib.uploads import upload_url
from owlat.runtime import (
    ActionCtx,
    MutationCtx,
    QueryCtx,
    internal,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
    v,
)

STALL_MS = 60_000  # an active import not advanced for this long has lost its worker
MAX_FILE_NAME = 255
ON_DUPLICATE = v.union(v.literal("skip"), v.literal("update"))
START_ARGS = {
    "storageId": v.id("_storage"),
    "fileName": v.optional(v.string()),
    "mapping": v.record(v.string(), v.string()),
    "listId": v.optional(v.string()),
    "onDuplicate": ON_DUPLICATE,
}
_ACTIVE = ("queued", "running")


async def _import_of(ctx: QueryCtx, organization_id: str, import_id: str) -> dict[str, Any]:
    normalized = ctx.db.normalize_id("contactImports", import_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id:
        raise not_found("Import")
    return dict(found)


async def _create(
    ctx: MutationCtx, organization_id: str, user_id: str | None, args: dict[str, Any]
) -> str:
    """Check the arguments and create the queued import; schedules the worker."""
    storage_id = args["storageId"]
    stored = await ctx.db.system.get(storage_id)
    if stored is None or stored.get("owner") != organization_id:
        raise not_found("File")
    definitions = await property_definitions(ctx, organization_id)
    mapping = {column.strip(): target.strip() for column, target in args["mapping"].items()}
    csv_import.check_mapping(mapping, definitions)
    record: dict[str, Any] = {
        "organizationId": organization_id,
        "storageId": storage_id,
        "mapping": mapping,
        "onDuplicate": args["onDuplicate"],
        "status": "queued",
        "rowsDone": 0,
        "byteOffset": 0,
        "imported": 0,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
    }
    if args.get("listId") is not None:
        record["listId"] = await _list_id(ctx, organization_id, args["listId"])
    file_name = (args.get("fileName") or "").strip()
    if file_name:
        record["fileName"] = file_name[:MAX_FILE_NAME]
    if user_id is not None:
        record["createdBy"] = user_id
    now = now_ms()
    record.update(createdAt=now, updatedAt=now)
    import_id = await ctx.db.insert("contactImports", record)
    await _schedule_worker(ctx, import_id, 0)
    return str(import_id)


async def _schedule_worker(ctx: MutationCtx, import_id: str, worker: int) -> None:
    await ctx.scheduler.run_after(
        0, internal.contact_imports.run, {"importId": import_id, "worker": worker}
    )


async def _upload_url(ctx: MutationCtx, organization_id: str) -> str:
    """An upload URL for an import file of the organization (bound to it, size-limited)."""
    return str(
        await ctx.storage.generate_upload_url(
            max_bytes=instance.current().import_max_bytes, owner=organization_id
        )
    )


async def _list_id(ctx: QueryCtx, organization_id: str, list_id: str) -> str:
    found = await live_document(ctx, "mailingLists", organization_id, list_id)
    if found is None:
        raise not_found("List")
    return str(found["_id"])


# -- dashboard functions --------------------------------------------------------------------


@mutation(args={})
async def generate_upload_url(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A URL to POST the CSV file to (the reply holds its `storageId`)."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    limit = instance.current().import_max_bytes
    return await upload_url(ctx, context.user_id, context.team_id, limit)


@mutation(args=START_ARGS)
async def start(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Start importing an uploaded CSV file; returns the import id."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    return await _create(ctx, context.team_id, context.user_id, args)


@query(args={"importId": v.string()})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The import with its progress, or None (unknown or another organization's)."""
    organization_id = await get_team_id_from_session(ctx)
    try:
        return await _import_of(ctx, organization_id, args["importId"])
    except AppError:
        return None


@query(args={"paginationOpts": PAGINATION_OPTS})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The organization's imports, newest first."""
    organization_id = await get_team_id_from_session(ctx)
    return dict(
        await ctx.db.query("contactImports")
        .with_index("by_org_created", lambda q: q.eq("organizationId", organization_id))
        .order("desc")
        .paginate(page_options(args["paginationOpts"]))
    )


@query(args={"importId": v.string(), "paginationOpts": PAGINATION_OPTS})
async def errors(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The import's row errors `{row, column?, reason}` by row."""
    organization_id = await get_team_id_from_session(ctx)
    found = await _import_of(ctx, organization_id, args["importId"])
    return dict(
        await ctx.db.query("contactImportErrors")
        .with_index("by_import", lambda q: q.eq("importId", found["_id"]))
        .paginate(page_options(args["paginationOpts"]))
    )


@mutation(args={"importId": v.string()})
async def cancel(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Stop a queued or running import (batches already applied stay)."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    found = await _import_of(ctx, context.team_id, args["importId"])
    if found["status"] not in _ACTIVE:
        raise invalid("IMPORT_FINISHED", f"The import is already {found['status']}")
    now = now_ms()
    changes = {"status": "canceled", "finishedAt": now, "updatedAt": now}
    await ctx.db.patch(found["_id"], changes)
    return {**found, **changes}


# -- the CLI's functions (admin key) ----------------------------------------------------------


@internal_query(args={"organization": v.string()})
async def organization_of(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """`{organizationId, propertyKeys}` of an organization given by slug or id, or None."""
    text = args["organization"].strip()
    normalized = ctx.db.normalize_id("organizations", text)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None:
        found = (
            await ctx.db.query("organizations")
            .with_index("by_slug", lambda q: q.eq("slug", text.lower()))
            .first()
        )
    if found is None:
        return None
    definitions = await property_definitions(ctx, found["_id"])
    return {"organizationId": found["_id"], "propertyKeys": sorted(definitions)}


@internal_mutation(args={"organizationId": v.id("organizations")})
async def upload_url_for_organization(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """`{uploadUrl, maxBytes}`: where the CLI posts an import file, and its size limit."""
    if await ctx.db.get(args["organizationId"]) is None:
        raise not_found("Organization")
    return {
        "uploadUrl": await _upload_url(ctx, args["organizationId"]),
        "maxBytes": instance.current().import_max_bytes,
    }


@internal_mutation(args={"organizationId": v.id("organizations"), **START_ARGS})
async def start_for_organization(ctx: MutationCtx, args: dict[str, Any]) -> str:
    if await ctx.db.get(args["organizationId"]) is None:
        raise not_found("Organization")
    return await _create(ctx, args["organizationId"], None, args)


@internal_query(args={"importId": v.id("contactImports"), "errorLimit": v.number()})
async def progress(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The import and its first `errorLimit` row errors."""
    found = await ctx.db.get(args["importId"])
    if found is None:
        return None
    rows = (
        await ctx.db.query("contactImportErrors")
        .with_index("by_import", lambda q: q.eq("importId", found["_id"]))
        .take(int(args["errorLimit"]))
    )
    return {**found, "errors": [dict(row) for row in rows]}


@internal_query(
    args={
        "organizationId": v.id("organizations"),
        "cursor": v.union(v.string(), v.null()),
        "numItems": v.number(),
    }
)
async def export_page(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A page of the organization's live contacts as CSV rows, oldest first, with the
    header (`owlat contacts export` pages through them)."""
    return await _export_page(ctx, args["organizationId"], args["cursor"], args["numItems"])


EXPORT_PAGE_MAX = 1000


@query(args={"cursor": v.union(v.string(), v.null()), "numItems": v.number()})
async def export_csv_page(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A page of the active organization's live contacts as CSV rows (`exportPage`'s shape),
    for the dashboard's export; admins only (`imports:manage`), at most
    `EXPORT_PAGE_MAX` rows a page."""
    context = await get_mutation_context(ctx, require="imports:manage")
    num_items = args["numItems"]
    if not 1 <= num_items <= EXPORT_PAGE_MAX or num_items != int(num_items):
        raise invalid("INVALID_PAGE_SIZE", f"numItems must be 1 to {EXPORT_PAGE_MAX}")
    return await _export_page(ctx, context.team_id, args["cursor"], int(num_items))


async def _export_page(
    ctx: QueryCtx, organization_id: str, cursor: str | None, num_items: int
) -> dict[str, Any]:
    definitions = await property_definitions(ctx, organization_id)
    types = {key: definitions[key]["type"] for key in sorted(definitions)}
    result = (
        await ctx.db.query("contacts")
        .with_index("by_org_created", lambda q: q.eq("organizationId", organization_id))
        .filter(lambda q: q.lt(q.field("deletedAt"), None))
        .paginate({"numItems": num_items, "cursor": cursor})
    )
    return {
        "header": csv_import.export_header([*types]),
        "rows": [csv_import.export_row(dict(c), types) for c in result["page"]],
        "isDone": result["isDone"],
        "continueCursor": result["continueCursor"],
    }


# -- the worker (its batches and file reading: lib/contact_import.py) ---------------------------


@internal_query(args={"importId": v.id("contactImports")})
async def worker_state(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The import with its file's size (`size` None when the file is gone)."""
    found = await ctx.db.get(args["importId"])
    if found is None:
        return None
    stored = await ctx.db.system.get(found["storageId"])
    if stored is None:
        return {**found, "size": None}
    return {**found, "size": int(stored["size"])}


@internal_mutation(args={"importId": v.id("contactImports"), "error": v.string()})
async def fail(ctx: MutationCtx, args: dict[str, Any]) -> None:
    found = await ctx.db.get(args["importId"])
    if found is None or found["status"] not in _ACTIVE:
        return
    await contact_import.mark_failed(ctx, found["_id"], args["error"])


@internal_mutation(
    args={"importId": v.id("contactImports"), "totalRows": v.number(), "byteOffset": v.number()}
)
async def begin(ctx: MutationCtx, args: dict[str, Any]) -> bool:
    """queued → running, with the row count and the first data row's offset."""
    found = await ctx.db.get(args["importId"])
    if found is None or found["status"] != "queued":
        return found is not None and found["status"] == "running"
    await ctx.db.patch(
        found["_id"],
        {
            "status": "running",
            "totalRows": args["totalRows"],
            "byteOffset": args["byteOffset"],
            "updatedAt": now_ms(),
        },
    )
    return True


@internal_mutation(args={"importId": v.id("contactImports")})
async def finish(ctx: MutationCtx, args: dict[str, Any]) -> None:
    found = await ctx.db.get(args["importId"])
    if found is None or found["status"] != "running":
        return
    now = now_ms()
    await ctx.db.patch(found["_id"], {"status": "completed", "finishedAt": now, "updatedAt": now})


@internal_mutation(
    args={
        "importId": v.id("contactImports"),
        "worker": v.optional(v.number()),
        "startOffset": v.number(),
        "endOffset": v.number(),
        "columns": v.array(v.string()),
        "rows": v.array(v.array(v.string())),
        "unclosed": v.optional(v.array(v.number())),
    }
)
async def apply_batch(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Apply one batch of rows (cells in `columns` order) read from the file's bytes
    `[startOffset, endOffset)`; the rows at the `unclosed` positions have a quote never
    closed and only count as failed. Returns `{"byteOffset", "stop"}`; a batch whose start
    is not the import's `byteOffset` was already applied and changes nothing; a worker
    that was replaced (`resume_stalled`) is told to stop."""
    found = await ctx.db.get(args["importId"])
    if found is None or found["status"] != "running":
        return {"byteOffset": 0, "stop": True}
    if contact_import.worker_of(found) != args.get("worker", 0):
        return {"byteOffset": found["byteOffset"], "stop": True}
    if found["byteOffset"] != args["startOffset"]:
        return {"byteOffset": found["byteOffset"], "stop": False}
    unclosed = {int(index) for index in args.get("unclosed") or ()}
    return await contact_import.apply_rows(
        ctx, dict(found), args["columns"], args["rows"], unclosed, args["endOffset"]
    )


@internal_action(args={"importId": v.id("contactImports"), "worker": v.optional(v.number())})
async def run(ctx: ActionCtx, args: dict[str, Any]) -> None:
    """The worker: applies batches for a couple of seconds, then schedules itself again
    until the file is done (resumes from the import's `byteOffset`). `worker` is its
    generation: a worker replaced by `resume_stalled` stops."""
    import_id, worker = args["importId"], int(args.get("worker", 0))
    state = await ctx.run_query(internal.contact_imports.worker_state, {"importId": import_id})
    if state is None or state["status"] not in _ACTIVE or contact_import.worker_of(state) != worker:
        return
    try:
        more = await contact_import.work(ctx, state)
    except contact_import.ImportFailed as error:
        await _fail(ctx, import_id, str(error))
        return
    except Exception as error:  # never leave an import running with no worker
        await _fail(ctx, import_id, f"The import stopped on an internal error: {error}")
        raise
    if more:
        await ctx.scheduler.run_after(
            0, internal.contact_imports.run, {"importId": import_id, "worker": worker}
        )


@internal_mutation(args={"idleMs": v.optional(v.number())})
async def resume_stalled(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Give a new worker to queued or running imports that have not advanced for `idleMs`
    (default `STALL_MS`): their worker was lost to a crash or restart (a scheduled action
    that is interrupted is not retried). Returns how many. A cron runs it every minute, and
    a server runs it with `idleMs` 0 when it starts (its own workers died with the last
    process). The new worker's generation is one more: a worker that was only slow, on this
    node or another, stops at its next batch, so one import never has two."""
    idle = STALL_MS if args.get("idleMs") is None else args["idleMs"]
    cutoff = now_ms() - idle
    resumed = 0
    for status in _ACTIVE:
        for found in await _not_advanced_since(ctx, status, cutoff):
            worker = contact_import.worker_of(found) + 1
            await ctx.db.patch(found["_id"], {"updatedAt": now_ms(), "worker": worker})
            await _schedule_worker(ctx, found["_id"], worker)
            resumed += 1
    return resumed


async def _not_advanced_since(ctx: QueryCtx, status: str, cutoff: float) -> list[dict[str, Any]]:
    """Up to 100 imports of `status` last updated before `cutoff`."""
    return await (
        ctx.db.query("contactImports")
        .with_index("by_status_updated", lambda q: q.eq("status", status).lt("updatedAt", cutoff))
        .take(100)
    )


async def _fail(ctx: ActionCtx, import_id: str, error: str) -> None:
    await ctx.run_mutation(internal.contact_imports.fail, {"importId": import_id, "error": error})
