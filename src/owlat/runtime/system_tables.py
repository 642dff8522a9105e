"""Every system table of the runtime, in one list: name, table number, definition.

System tables hold the runtime's own state next to the app's documents, in the same
transactions. Their names start with `_`, and their table numbers are fixed here (below
`schema.FIRST_USER_TABLE_NUMBER`, from which the app's tables are numbered) because a
table number is part of every id of the table's documents: a number must never change
and never be reused. The Application hands `SYSTEM_TABLES` to the catalog
(database/catalog.py), which creates them with the app's tables; apps read them, never
write them, through `ctx.db.system`. The modules that keep a table's rows import its
name, index names and, for scheduled functions, its states from here.
"""

from __future__ import annotations

from typing import Final

from owlat.runtime.schema import SystemTable, define_table
from owlat.runtime.values import v

# `_scheduled_functions` (scheduler/scheduler.py): one job per scheduled call, with its state.
SCHEDULED_FUNCTIONS: Final = "_scheduled_functions"
JOBS_BY_STATE: Final = "by_state_and_time"
JOBS_BY_COMPLETION: Final = "by_completed_time"
PENDING: Final = "pending"
IN_PROGRESS: Final = "inProgress"
SUCCESS: Final = "success"
FAILED: Final = "failed"
CANCELED: Final = "canceled"

# `_storage` (storage/storage.py): one document per stored file.
STORAGE: Final = "_storage"
FILES_BY_KEY: Final = "by_key"

# `_session_requests` (sync/session_requests.py): outcomes of mutations sent over a sync session.
SESSION_REQUESTS: Final = "_session_requests"
REQUESTS_BY_SESSION: Final = "by_session_request"

# `_cron_jobs` (the scheduler's worker): each declared cron and its next run.
CRON_JOBS: Final = "_cron_jobs"
CRONS_BY_NAME: Final = "by_name"
CRONS_BY_NEXT_RUN: Final = "by_next_run"

# `_scheduler_claims` (the scheduler's claims): which node runs which action.
SCHEDULER_CLAIMS: Final = "_scheduler_claims"
CLAIMS_BY_JOB: Final = "by_job"
CLAIMS_BY_NODE: Final = "by_node"

# `_backups` (backups.py): the claim and outcome of each scheduled backup, by its slot.
BACKUPS: Final = "_backups"
BACKUPS_BY_SLOT: Final = "by_slot"

SYSTEM_TABLES: Final = (
    SystemTable(
        SCHEDULED_FUNCTIONS,
        1,
        define_table(
            {
                "name": v.string(),
                "args": v.array(v.any()),
                "scheduledTime": v.number(),
                "completedTime": v.optional(v.number()),
                "state": v.object(
                    {
                        "kind": v.union(
                            *(
                                v.literal(kind)
                                for kind in (PENDING, IN_PROGRESS, SUCCESS, FAILED, CANCELED)
                            )
                        ),
                        "error": v.optional(v.string()),
                    }
                ),
            }
        )
        .index(JOBS_BY_STATE, ["state.kind", "scheduledTime"])
        .index(JOBS_BY_COMPLETION, ["completedTime"]),
    ),
    SystemTable(
        STORAGE,
        2,
        define_table(
            {
                "sha256": v.string(),  # base64 of the content's SHA-256
                "size": v.number(),  # bytes
                "contentType": v.optional(v.string()),
                "owner": v.optional(v.string()),  # as the upload URL (or store()) named it
                "key": v.string(),  # the blob's name and the file's URL path
            }
        ).index(FILES_BY_KEY, ["key"]),
    ),
    SystemTable(
        SESSION_REQUESTS,
        3,
        define_table(
            {
                "sessionId": v.string(),
                "requestId": v.number(),
                "ts": v.int64(),  # the commit timestamp of the mutation
                "result": v.string(),  # the result, as Convex's encoded JSON text
            }
        ).index(REQUESTS_BY_SESSION, ["sessionId", "requestId"]),
    ),
    SystemTable(
        CRON_JOBS,
        4,
        define_table(
            {
                "name": v.string(),
                "schedule": v.string(),
                "function": v.string(),
                "args": v.any(),
                "anchorTime": v.number(),
                "nextRun": v.number(),
                "jobId": v.optional(v.id(SCHEDULED_FUNCTIONS)),
            }
        )
        .index(CRONS_BY_NAME, ["name"])
        .index(CRONS_BY_NEXT_RUN, ["nextRun"]),
    ),
    SystemTable(
        SCHEDULER_CLAIMS,
        5,
        define_table(
            {"jobId": v.id(SCHEDULED_FUNCTIONS), "node": v.string(), "expires": v.number()}
        )
        .index(CLAIMS_BY_JOB, ["jobId"])
        .index(CLAIMS_BY_NODE, ["node"]),
    ),
    SystemTable(
        BACKUPS,
        6,
        define_table(
            {
                "slot": v.number(),  # the scheduled time (ms since the epoch)
                "node": v.string(),  # the server process that claimed it
                "state": v.union(v.literal("running"), v.literal("done"), v.literal("failed")),
                "file": v.optional(v.string()),
                "error": v.optional(v.string()),
            }
        ).index(BACKUPS_BY_SLOT, ["slot"]),
    ),
)
