"""CSV imports of contacts (reference §7.1 importBatch, streamed from a stored file).

A run: `generateUploadUrl` → POST the file → `start({storageId, mapping, listId?,
onDuplicate})` creates a `contactImports` document (`queued`) and schedules the worker
(`run`, an internal action). The worker reads the file in byte ranges from `byteOffset`
(never all of it), counts its rows once for a progress denominator, and hands each batch of
parsed rows to ONE mutation (`apply_batch`) that upserts the contacts by normalized email
(`onDuplicate` skip|update; duplicates within the file too), subscribes them to the list,
writes per-row errors (the first `MAX_STORED_ERRORS` failed rows) and `imported`
activities, and advances `byteOffset`, `rowsDone` and the counters, all in one
transaction: a batch applies once (its start offset must be the document's), so a crash or
a re-run resumes exactly where the last committed batch ended. A row whose quoted field
is never closed is a row error, and the lines after it are still read as rows
(lib/csv_import.py). Empty cells never clear a value; an update that changes nothing
counts as skipped. Imports do not fire `contact.created` webhooks or automations
(reference §16 6b).

With a list (lib/list_subscriptions.ListBatch): a new contact is written once, already a
member (3 writes: contact, membership, `imported` activity naming the list), unless the
list asks for double opt-in (then it is subscribed as pending, with its confirmation
mail); existing contacts are subscribed as `mailingLists:addContact` does (no effect on
members); the list's counts move once per batch. A list deleted mid-import fails it.

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

import time
from typing import Any

from owlat.app.lib import csv_import, instance
from owlat.app.lib.audience import (
    PAGINATION_OPTS,
    clean_email,
    clean_property_value,
    live_document,
    page_options,
    property_definitions,
)
from owlat.app.lib.contacts import (
    clean_fields,
    contact_patch,
    contact_record,
    live_by_email,
    record_activity,
)
from owlat.app.lib.errors import AppError, invalid, not_found
from owlat.app.lib.list_subscriptions import ListBatch
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.runtime import (
    UNDEFINED,
    LimitExceededError,
    internal,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
    v,
)

# Rows per mutation. A transaction may read 4,096 index ranges (a `db.get` and the read
# inside `db.patch` count one each) and schedule 1,000 functions. The costliest row, an
# existing contact changed by `update` and new to a list, reads 4: its email lookup, the
# patch of its fields, the membership lookup and the patch adding the list (a new contact
# reads 1, a repeat within the batch at most 1); a batch adds 6 (the import, property
# definitions, the list, the list's count bump (a get and a patch), the import's patch):
# 1,000 × 4 + 6 = 4,006. A double opt-in list schedules at most one confirmation mail per
# row: 1,000 jobs. Writes: at most 6 a row (16,000 allowed). Triggers on contacts (segment
# counts) cost more per row: a batch over a limit is retried in halves (see `_work`).
BATCH_ROWS = 1000
MAX_STORED_ERRORS = 1000
SLICE_SECONDS = 2.0  # the worker reschedules itself after this long
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


async def _import_of(ctx: Any, organization_id: str, import_id: str) -> dict[str, Any]:
    normalized = ctx.db.normalize_id("contactImports", import_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id:
        raise not_found("Import")
    return dict(found)


async def _create(ctx: Any, organization_id: str, user_id: str | None, args: dict[str, Any]) -> str:
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


async def _schedule_worker(ctx: Any, import_id: str, worker: int) -> None:
    await ctx.scheduler.run_after(
        0, internal.contact_imports.run, {"importId": import_id, "worker": worker}
    )


def _worker_of(found: dict[str, Any]) -> int:
    """The generation of the worker that may advance the import (0 until resumed)."""
    return int(found.get("worker", 0))


async def _upload_url(ctx: Any, organization_id: str) -> str:
    """An upload URL for an import file of the organization (bound to it, size-limited)."""
    return str(
        await ctx.storage.generate_upload_url(
            max_bytes=instance.current().import_max_bytes, owner=organization_id
        )
    )


async def _list_id(ctx: Any, organization_id: str, list_id: str) -> str:
    found = await live_document(ctx, "mailingLists", organization_id, list_id)
    if found is None:
        raise not_found("List")
    return str(found["_id"])


# -- dashboard functions --------------------------------------------------------------------


@mutation(args={})
async def generate_upload_url(ctx: Any, args: Any) -> str:
    """A URL to POST the CSV file to (the reply holds its `storageId`)."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    return await _upload_url(ctx, context.team_id)


@mutation(args=START_ARGS)
async def start(ctx: Any, args: Any) -> str:
    """Start importing an uploaded CSV file; returns the import id."""
    context = await get_mutation_context(ctx, require="contacts:manage")
    return await _create(ctx, context.team_id, context.user_id, args)


@query(args={"importId": v.string()})
async def get(ctx: Any, args: Any) -> dict[str, Any] | None:
    """The import with its progress, or None (unknown or another organization's)."""
    organization_id = await get_team_id_from_session(ctx)
    try:
        return await _import_of(ctx, organization_id, args["importId"])
    except AppError:
        return None


@query(args={"paginationOpts": PAGINATION_OPTS})
async def list_(ctx: Any, args: Any) -> dict[str, Any]:
    """The organization's imports, newest first."""
    organization_id = await get_team_id_from_session(ctx)
    return dict(
        await ctx.db.query("contactImports")
        .with_index("by_org_created", lambda q: q.eq("organizationId", organization_id))
        .order("desc")
        .paginate(page_options(args["paginationOpts"]))
    )


@query(args={"importId": v.string(), "paginationOpts": PAGINATION_OPTS})
async def errors(ctx: Any, args: Any) -> dict[str, Any]:
    """The import's row errors `{row, column?, reason}` by row."""
    organization_id = await get_team_id_from_session(ctx)
    found = await _import_of(ctx, organization_id, args["importId"])
    return dict(
        await ctx.db.query("contactImportErrors")
        .with_index("by_import", lambda q: q.eq("importId", found["_id"]))
        .paginate(page_options(args["paginationOpts"]))
    )


@mutation(args={"importId": v.string()})
async def cancel(ctx: Any, args: Any) -> dict[str, Any]:
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
async def organization_of(ctx: Any, args: Any) -> dict[str, Any] | None:
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
async def upload_url_for_organization(ctx: Any, args: Any) -> dict[str, Any]:
    """`{uploadUrl, maxBytes}`: where the CLI posts an import file, and its size limit."""
    if await ctx.db.get(args["organizationId"]) is None:
        raise not_found("Organization")
    return {
        "uploadUrl": await _upload_url(ctx, args["organizationId"]),
        "maxBytes": instance.current().import_max_bytes,
    }


@internal_mutation(args={"organizationId": v.id("organizations"), **START_ARGS})
async def start_for_organization(ctx: Any, args: Any) -> str:
    if await ctx.db.get(args["organizationId"]) is None:
        raise not_found("Organization")
    return await _create(ctx, args["organizationId"], None, args)


@internal_query(args={"importId": v.id("contactImports"), "errorLimit": v.number()})
async def progress(ctx: Any, args: Any) -> dict[str, Any] | None:
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
async def export_page(ctx: Any, args: Any) -> dict[str, Any]:
    """A page of the organization's live contacts as CSV rows, oldest first, with the
    header (`owlat contacts export` pages through them)."""
    organization_id = args["organizationId"]
    definitions = await property_definitions(ctx, organization_id)
    types = {key: definitions[key]["type"] for key in sorted(definitions)}
    result = (
        await ctx.db.query("contacts")
        .with_index("by_org_created", lambda q: q.eq("organizationId", organization_id))
        .filter(lambda q: q.lt(q.field("deletedAt"), None))
        .paginate({"numItems": args["numItems"], "cursor": args["cursor"]})
    )
    return {
        "header": csv_import.export_header([*types]),
        "rows": [csv_import.export_row(dict(c), types) for c in result["page"]],
        "isDone": result["isDone"],
        "continueCursor": result["continueCursor"],
    }


# -- the worker -----------------------------------------------------------------------------


@internal_query(args={"importId": v.id("contactImports")})
async def worker_state(ctx: Any, args: Any) -> dict[str, Any] | None:
    """The import with its file's size (`size` None when the file is gone)."""
    found = await ctx.db.get(args["importId"])
    if found is None:
        return None
    stored = await ctx.db.system.get(found["storageId"])
    if stored is None:
        return {**found, "size": None}
    return {**found, "size": int(stored["size"])}


@internal_mutation(args={"importId": v.id("contactImports"), "error": v.string()})
async def fail(ctx: Any, args: Any) -> None:
    found = await ctx.db.get(args["importId"])
    if found is None or found["status"] not in _ACTIVE:
        return
    await _mark_failed(ctx, found["_id"], args["error"])


async def _mark_failed(ctx: Any, import_id: str, error: str) -> None:
    now = now_ms()
    await ctx.db.patch(
        import_id, {"status": "failed", "error": error, "finishedAt": now, "updatedAt": now}
    )


@internal_mutation(
    args={"importId": v.id("contactImports"), "totalRows": v.number(), "byteOffset": v.number()}
)
async def begin(ctx: Any, args: Any) -> bool:
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
async def finish(ctx: Any, args: Any) -> None:
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
async def apply_batch(ctx: Any, args: Any) -> dict[str, Any]:
    """Apply one batch of rows (cells in `columns` order) read from the file's bytes
    `[startOffset, endOffset)`; the rows at the `unclosed` positions have a quote never
    closed and only count as failed. Returns `{"byteOffset", "stop"}`; a batch whose start
    is not the import's `byteOffset` was already applied and changes nothing; a worker
    that was replaced (`resume_stalled`) is told to stop."""
    found = await ctx.db.get(args["importId"])
    if found is None or found["status"] != "running":
        return {"byteOffset": 0, "stop": True}
    if _worker_of(found) != args.get("worker", 0):
        return {"byteOffset": found["byteOffset"], "stop": True}
    if found["byteOffset"] != args["startOffset"]:
        return {"byteOffset": found["byteOffset"], "stop": False}
    batch = _Batch(ctx, dict(found), args["columns"])
    if not await batch.prepare():
        await _mark_failed(ctx, found["_id"], "The mailing list was deleted")
        return {"byteOffset": found["byteOffset"], "stop": True}
    unclosed = {int(index) for index in args.get("unclosed") or ()}
    for index, cells in enumerate(args["rows"]):
        number = int(found["rowsDone"]) + index + 1
        if index in unclosed:
            await batch.failed(number, None, csv_import.UNCLOSED)
        else:
            await batch.row(number, cells)
    await batch.finish()
    counts = batch.counts
    await ctx.db.patch(
        found["_id"],
        {
            "rowsDone": found["rowsDone"] + len(args["rows"]),
            "byteOffset": args["endOffset"],
            **{key: found[key] + counts[key] for key in counts},
            "updatedAt": now_ms(),
        },
    )
    return {"byteOffset": args["endOffset"], "stop": False}


class _RowError(Exception):
    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


class _Batch:
    """One batch's rows applied in the mutation's transaction."""

    def __init__(self, ctx: Any, found: dict[str, Any], columns: list[str]) -> None:
        self.ctx = ctx
        self.found = found
        self.organization_id = found["organizationId"]
        self.targets = [found["mapping"][column] for column in columns]
        self.columns = columns
        self.counts = {"imported": 0, "updated": 0, "skipped": 0, "failed": 0}
        self.seen: dict[str, dict[str, Any]] = {}
        self.definitions: dict[str, dict[str, Any]] = {}
        self.list_batch: ListBatch | None = None

    async def prepare(self) -> bool:
        """Load what every row needs; False when the import's list was deleted."""
        self.definitions = await property_definitions(self.ctx, self.organization_id)
        list_id = self.found.get("listId")
        if list_id is None:
            return True
        self.list_batch = await ListBatch.open(
            self.ctx, list_id, source="import", user_id=self.found.get("createdBy")
        )
        return self.list_batch is not None

    async def finish(self) -> None:
        if self.list_batch is not None:
            await self.list_batch.flush()

    async def row(self, number: int, cells: list[str]) -> None:
        try:
            email, fields, properties = self._values(cells)
            await self._upsert(email, fields, properties)
        except _RowError as error:
            await self.failed(number, error.column, error.reason)

    async def failed(self, number: int, column: str | None, reason: str) -> None:
        """Count row `number` as failed (its error stored while under the cap)."""
        if self.found["failed"] + self.counts["failed"] < MAX_STORED_ERRORS:
            record: dict[str, Any] = {
                "organizationId": self.organization_id,
                "importId": self.found["_id"],
                "row": float(number),
                "reason": reason,
            }
            if column is not None:
                record["column"] = column
            await self.ctx.db.insert("contactImportErrors", record)
        self.counts["failed"] += 1

    def _values(self, cells: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        email = ""
        fields: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        for column, target, cell in zip(self.columns, self.targets, cells, strict=False):
            text = csv_import.unescape_formula(cell.strip())
            try:
                if target == "email":
                    email = clean_email(text) if text else ""
                elif not text:
                    continue
                elif target.startswith(csv_import.PROPERTY_PREFIX):
                    definition = self.definitions.get(target[len(csv_import.PROPERTY_PREFIX) :])
                    if definition is None:
                        raise _RowError(column, f"Property of column {column!r} was deleted")
                    value = csv_import.property_cell(definition["type"], text)
                    properties[definition["key"]] = clean_property_value(definition, value)
                else:
                    fields.update(
                        {
                            k: val
                            for k, val in clean_fields({target: text}).items()
                            if val is not None
                        }
                    )
            except AppError as error:
                raise _RowError(column, error.message) from None
        if not email:
            column = self.columns[self.targets.index("email")]
            raise _RowError(column, "Email is missing")
        return email, fields, properties

    async def _upsert(self, email: str, fields: dict[str, Any], properties: dict[str, Any]) -> None:
        existing = self.seen.get(email)
        if existing is None:
            existing = await live_by_email(self.ctx, self.organization_id, email)
        if existing is None:
            self.seen[email] = await self._insert(email, fields, properties)
            self.counts["imported"] += 1
            return
        if self.found["onDuplicate"] == "skip":
            contact = existing
            self.counts["skipped"] += 1
        else:
            contact, changed = await self._update(existing, fields, properties)
            self.counts["updated" if changed else "skipped"] += 1
        if self.list_batch is not None:
            contact = await self.list_batch.add(contact)
        self.seen[email] = contact

    async def _insert(
        self, email: str, fields: dict[str, Any], properties: dict[str, Any]
    ) -> dict[str, Any]:
        now = now_ms()
        record = contact_record(self.organization_id, email, "import", fields, properties, now)
        metadata = {"importId": str(self.found["_id"])}
        if self.list_batch is not None:
            return await self.list_batch.insert_contact(record, "imported", metadata)
        contact = {**record, "_id": await self.ctx.db.insert("contacts", record)}
        await record_activity(
            self.ctx, contact, "imported", metadata, self.found.get("createdBy"), now
        )
        return contact

    async def _update(
        self, contact: dict[str, Any], fields: dict[str, Any], properties: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        changes = {k: val for k, val in fields.items() if contact.get(k) != val}
        merged = {**contact["properties"], **properties}
        if merged != contact["properties"]:
            changes["properties"] = merged
        if not changes:
            return contact, False
        now = now_ms()
        changes = contact_patch(contact, changes, now)
        await self.ctx.db.patch(contact["_id"], changes)
        metadata = {
            "source": "import",
            "fields": ",".join(sorted(k for k in changes if k in csv_import.FIELDS)),
        }
        await record_activity(
            self.ctx, contact, "updated", metadata, self.found.get("createdBy"), now
        )
        updated = {k: val for k, val in {**contact, **changes}.items() if val is not UNDEFINED}
        return updated, True


@internal_action(args={"importId": v.id("contactImports"), "worker": v.optional(v.number())})
async def run(ctx: Any, args: Any) -> None:
    """The worker: applies batches for a couple of seconds, then schedules itself again
    until the file is done (resumes from the import's `byteOffset`). `worker` is its
    generation: a worker replaced by `resume_stalled` stops."""
    import_id, worker = args["importId"], int(args.get("worker", 0))
    state = await ctx.run_query(internal.contact_imports.worker_state, {"importId": import_id})
    if state is None or state["status"] not in _ACTIVE or _worker_of(state) != worker:
        return
    try:
        more = await _work(ctx, state)
    except _ImportFailed as error:
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
async def resume_stalled(ctx: Any, args: Any) -> int:
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
        stalled = (
            await ctx.db.query("contactImports")
            .with_index(
                "by_status_updated", lambda q, s=status: q.eq("status", s).lt("updatedAt", cutoff)
            )
            .take(100)
        )
        for found in stalled:
            worker = _worker_of(found) + 1
            await ctx.db.patch(found["_id"], {"updatedAt": now_ms(), "worker": worker})
            await _schedule_worker(ctx, found["_id"], worker)
            resumed += 1
    return resumed


async def _fail(ctx: Any, import_id: str, error: str) -> None:
    await ctx.run_mutation(internal.contact_imports.fail, {"importId": import_id, "error": error})


class _ImportFailed(Exception):
    """The file cannot be imported (the message says why)."""


async def _work(ctx: Any, state: dict[str, Any]) -> bool:
    """Apply batches until the time slice ends (True: more to do) or the file does."""
    if state["size"] is None:
        raise _ImportFailed("The uploaded file was deleted")
    import_id, key, size = state["_id"], state["storageId"], int(state["size"])
    header, first_row = await _header(ctx, key, size)
    mapping = state["mapping"]
    try:
        positions = csv_import.column_positions(header, mapping)
    except ValueError as error:
        raise _ImportFailed(str(error)) from None
    columns = [*positions]
    offset = int(state["byteOffset"])
    if state["status"] == "queued":
        total = await _count_rows(ctx, key, first_row, size)
        running = await ctx.run_mutation(
            internal.contact_imports.begin,
            {"importId": import_id, "totalRows": total, "byteOffset": first_row},
        )
        if not running:
            return False
        offset = first_row
    deadline = time.monotonic() + SLICE_SECONDS
    batch_rows = BATCH_ROWS
    while True:  # at least one batch per run
        if offset >= size:
            await ctx.run_mutation(internal.contact_imports.finish, {"importId": import_id})
            return False
        records, used, unclosed = await _next_records(ctx, key, offset, size, batch_rows)
        try:
            parsed = csv_import.parse_records(records, unclosed)
        except UnicodeDecodeError:
            raise _ImportFailed(
                f"The file is not UTF-8 text (bytes {offset}-{offset + used})"
            ) from None
        rows: list[list[str]] = []
        unclosed_rows: list[int] = []
        for row in parsed:
            if row is None:
                unclosed_rows.append(len(rows))
                rows.append([])
            elif _filled(row):
                rows.append([_at(row, positions[c]) for c in columns])
        try:
            result = await ctx.run_mutation(
                internal.contact_imports.apply_batch,
                {
                    "importId": import_id,
                    "worker": _worker_of(state),
                    "startOffset": offset,
                    "endOffset": offset + used,
                    "columns": columns,
                    "rows": rows,
                    "unclosed": unclosed_rows,
                },
            )
        except LimitExceededError:
            # rows costlier than BATCH_ROWS' arithmetic (the organization's triggers, e.g.
            # maintained segment counts, read and write per contact): the failed batch
            # committed nothing, so it is retried in halves
            if len(records) <= 1:
                raise
            batch_rows = len(records) // 2
            continue
        if result["stop"]:
            return False
        offset = int(result["byteOffset"])
        if time.monotonic() >= deadline:
            return True


def _filled(row: list[str]) -> bool:
    return any(cell.strip() for cell in row)


def _at(row: list[str], index: int) -> str:
    return row[index] if index < len(row) else ""


async def _header(ctx: Any, key: str, size: int) -> tuple[list[str], int]:
    length = 64 * 1024
    while True:
        data = await csv_import.read_range(ctx, key, 0, min(length, size))
        try:
            found = csv_import.header_of(data, at_end=length >= size)
        except UnicodeDecodeError:
            raise _ImportFailed("The file is not UTF-8 text (its header row)") from None
        except ValueError as error:
            raise _ImportFailed(str(error)) from None
        if found is not None and any(found[0]):
            return found[0], min(found[1], size)
        if length >= size or length >= csv_import.MAX_RECORD_BYTES:
            raise _ImportFailed("The file has no header row")
        length *= 4


async def _count_rows(ctx: Any, key: str, start: int, size: int) -> int:
    counter = csv_import.RecordCounter()
    for offset in range(start, size, csv_import.CHUNK_BYTES):
        end = min(size, offset + csv_import.CHUNK_BYTES)
        counter.feed(await csv_import.read_range(ctx, key, offset, end))
    return counter.finish()


async def _next_records(
    ctx: Any, key: str, offset: int, size: int, batch_rows: int
) -> csv_import.Split:
    """Up to `batch_rows` whole records starting at `offset`."""
    length = csv_import.CHUNK_BYTES
    while True:
        end = min(size, offset + length)
        data = await csv_import.read_range(ctx, key, offset, end)
        records, used, unclosed = csv_import.split_records(data, at_end=end >= size)
        if records:
            if len(records) > batch_rows:
                records = records[:batch_rows]
                used = sum(len(record) + 1 for record in records)
                unclosed = frozenset(index for index in unclosed if index < batch_rows)
            return csv_import.Split(records, min(used, end - offset), unclosed)
        if end >= size or length >= csv_import.MAX_RECORD_BYTES:
            raise _ImportFailed(
                f"A row at byte {offset} is longer than {csv_import.MAX_RECORD_BYTES} bytes "
                "(or a quoted field is never closed)"
            )
        length *= 2
