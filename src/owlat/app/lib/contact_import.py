"""A CSV import's batches and its worker (the functions are in `contact_imports.py`).

The worker (`work`, run by the internal action `contact_imports:run`) reads the stored
file in byte ranges from the import's `byteOffset` (never all of it), counts its rows once
for a progress denominator, and hands each batch of parsed rows to ONE mutation
(`contact_imports:applyBatch`, which runs `apply_rows`): it upserts the contacts by
normalized email (`onDuplicate` skip|update; duplicates within the file too), subscribes
them to the list, writes per-row errors (the first `MAX_STORED_ERRORS` failed rows), and
advances `byteOffset`, `rowsDone` and the counters, all in one transaction. A new contact
names the import (`importId`): its timeline shows the import's `imported` entry
(lib/activities.with_import_entry), no activity is stored per contact. Empty cells never
clear a value; an update that changes nothing counts as skipped (a changed contact gets its
`updated` activity).

With a list (lib/list_subscriptions.ListBatch): a new contact is written once, already a
member (2 writes: contact, membership), unless the list asks for double opt-in (then it is
subscribed as pending, with its confirmation mail); existing contacts are subscribed as
`mailingLists:addContact` does (no effect on members); the list's counts move once per
batch. A list deleted mid-import fails it.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from owlat.app.lib import csv_import
from owlat.app.lib.activities import insert_contacts, record_activity
from owlat.app.lib.audience import clean_email, clean_property_value, property_definitions
from owlat.app.lib.contacts import (
    clean_fields,
    contact_patch,
    contact_record,
    live_by_emails,
)
from owlat.app.lib.errors import AppError
from owlat.app.lib.list_subscriptions import ListBatch
from owlat.app.lib.session_organization import now_ms
from owlat.runtime import UNDEFINED, ActionCtx, LimitExceededError, MutationCtx, internal

# Rows per mutation. A transaction may read 4,096 index ranges (a `db.get` and the read
# inside `db.patch` count one each) and schedule 1,000 functions. The costliest row, an
# existing contact changed by `update` and new to a list, reads 4: its email lookup, the
# patch of its fields, the membership lookup and the patch adding the list (a new contact
# reads 1, a repeat within the batch at most 1); a batch adds 6 (the import, property
# definitions, the list, the list's count bump (a get and a patch), the import's patch):
# 1,000 × 4 + 6 = 4,006. A double opt-in list schedules at most one confirmation mail per
# row: 1,000 jobs. Writes: at most 6 a row (16,000 allowed). Triggers on contacts (segment
# counts) cost more per row: a batch over a limit is retried in halves (see `work`).
BATCH_ROWS = 1000
MAX_STORED_ERRORS = 1000
SLICE_SECONDS = 2.0  # the worker reschedules itself after this long


def worker_of(found: dict[str, Any]) -> int:
    """The generation of the worker that may advance the import (0 until resumed)."""
    return int(found.get("worker", 0))


async def mark_failed(ctx: MutationCtx, import_id: str, error: str) -> None:
    now = now_ms()
    await ctx.db.patch(
        import_id, {"status": "failed", "error": error, "finishedAt": now, "updatedAt": now}
    )


# -- a batch (one mutation) -----------------------------------------------------------------


async def apply_rows(
    ctx: MutationCtx,
    found: dict[str, Any],
    columns: list[str],
    rows: list[list[str]],
    unclosed: Collection[int],
    end_offset: float,
) -> dict[str, Any]:
    """Apply one batch of rows (cells in `columns` order) of the running import `found`,
    which end at byte `end_offset`; the rows at the `unclosed` positions have a quote never
    closed and only count as failed. Returns `{"byteOffset", "stop"}`."""
    batch = _Batch(ctx, found, columns)
    if not await batch.prepare():
        await mark_failed(ctx, found["_id"], "The mailing list was deleted")
        return {"byteOffset": found["byteOffset"], "stop": True}
    await batch.apply(int(found["rowsDone"]), rows, unclosed)
    counts = batch.counts
    await ctx.db.patch(
        found["_id"],
        {
            "rowsDone": found["rowsDone"] + len(rows),
            "byteOffset": end_offset,
            **{key: found[key] + counts[key] for key in counts},
            "updatedAt": now_ms(),
        },
    )
    return {"byteOffset": end_offset, "stop": False}


class _RowError(Exception):
    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


class _Batch:
    """One batch's rows applied in the mutation's transaction."""

    def __init__(self, ctx: MutationCtx, found: dict[str, Any], columns: list[str]) -> None:
        self.ctx = ctx
        self.found = found
        self.organization_id: str = found["organizationId"]
        self.targets: list[str] = [found["mapping"][column] for column in columns]
        self.columns = columns
        self.counts = {"imported": 0, "updated": 0, "skipped": 0, "failed": 0}
        # contacts by email as they now are; a new one has no `_id` until it is written
        self.seen: dict[str, dict[str, Any]] = {}
        self.new: list[dict[str, Any]] = []  # new contacts not yet written, in row order
        self.existing: dict[str, dict[str, Any]] = {}  # contacts by email before the batch
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

    async def apply(self, done: int, rows: list[list[str]], unclosed: Collection[int]) -> None:
        """Apply `rows` (numbered from `done` + 1): their values are checked first, every
        email's contact is then read in one step, then each row is applied in order."""
        values: list[tuple[str, dict[str, Any], dict[str, Any]] | _RowError] = []
        for index, cells in enumerate(rows):
            try:
                if index in unclosed:
                    raise _RowError(None, csv_import.UNCLOSED)
                values.append(self._values(cells))
            except _RowError as error:
                values.append(error)
        emails = list(dict.fromkeys(v[0] for v in values if not isinstance(v, _RowError)))
        self.existing = await live_by_emails(self.ctx, self.organization_id, emails)
        for index, value in enumerate(values):
            if isinstance(value, _RowError):
                await self.failed(done + index + 1, value.column, value.reason)
            else:
                await self._upsert(*value)
        await self._write_new()
        if self.list_batch is not None:
            await self.list_batch.flush()

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
        if existing is not None and "_id" not in existing:  # new in this batch: write it now
            await self._write_new()
            existing = self.seen[email]
        if existing is None:
            existing = self.existing.get(email)
        if existing is None:
            record = contact_record(
                self.organization_id, email, "import", fields, properties, now_ms()
            )
            record["importId"] = self.found["_id"]
            self.new.append(record)
            self.seen[email] = record
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

    async def _write_new(self) -> None:
        """Insert the new contacts held so far (and their memberships): one `insert_many`
        per table. Each names the import (`importId`), which records their creation in
        their timelines once (lib/activities.with_import_entry)."""
        records, self.new = self.new, []
        if not records:
            return
        if self.list_batch is not None:
            contacts = await self.list_batch.insert_contacts(records)
        else:
            contacts = await insert_contacts(self.ctx, records)
        for contact in contacts:
            self.seen[contact["email"]] = contact

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


# -- the worker (an action) -----------------------------------------------------------------


class ImportFailed(Exception):
    """The file cannot be imported (the message says why)."""


async def work(ctx: ActionCtx, state: dict[str, Any]) -> bool:
    """Apply batches of the import `state` (`contact_imports:workerState`) until the time
    slice ends (True: more to do) or the file does; `ImportFailed` when it cannot go on."""
    if state["size"] is None:
        raise ImportFailed("The uploaded file was deleted")
    import_id, key, size = state["_id"], state["storageId"], int(state["size"])
    header, first_row = await _header(ctx, key, size)
    mapping = state["mapping"]
    try:
        positions = csv_import.column_positions(header, mapping)
    except ValueError as error:
        raise ImportFailed(str(error)) from None
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
            raise ImportFailed(
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
                    "worker": worker_of(state),
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


async def _header(ctx: ActionCtx, key: str, size: int) -> tuple[list[str], int]:
    length = 64 * 1024
    while True:
        data = await csv_import.read_range(ctx, key, 0, min(length, size))
        try:
            found = csv_import.header_of(data, at_end=length >= size)
        except UnicodeDecodeError:
            raise ImportFailed("The file is not UTF-8 text (its header row)") from None
        except ValueError as error:
            raise ImportFailed(str(error)) from None
        if found is not None and any(found[0]):
            return found[0], min(found[1], size)
        if length >= size or length >= csv_import.MAX_RECORD_BYTES:
            raise ImportFailed("The file has no header row")
        length *= 4


async def _count_rows(ctx: ActionCtx, key: str, start: int, size: int) -> int:
    counter = csv_import.RecordCounter()
    for offset in range(start, size, csv_import.CHUNK_BYTES):
        end = min(size, offset + csv_import.CHUNK_BYTES)
        counter.feed(await csv_import.read_range(ctx, key, offset, end))
    return counter.finish()


async def _next_records(
    ctx: ActionCtx, key: str, offset: int, size: int, batch_rows: int
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
            raise ImportFailed(
                f"A row at byte {offset} is longer than {csv_import.MAX_RECORD_BYTES} bytes "
                "(or a quoted field is never closed)"
            )
        length *= 2
