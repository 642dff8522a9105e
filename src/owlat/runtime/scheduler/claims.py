"""Which node runs which scheduled action: `_scheduler_claims`, leases renewed by heartbeat.

Several scheduler workers (server processes, on one PostgreSQL database or one SQLite
file) share the jobs. Each worker has a node id (new at every start). When it moves an
action to `inProgress` it inserts, in the same transaction, a claim {jobId, node, expires};
while the action runs the worker renews the expiry of its claims every `HEARTBEAT_MS`;
when the action finishes its claim is deleted with the job's final state. A worker that
stops cleanly deletes its claims at once.

Recovery (at start and then at every heartbeat): a job still `inProgress` whose claim is
missing or expired belongs to a node that died; it is failed with "Transient error while
executing action" and never re-run (at most once). A job whose claim is alive is left
alone: another node is running it. Claiming itself needs no lock: the claim transaction
first checks the job is still pending, and serializable transactions let only one of two
racing claimers commit.
"""

from __future__ import annotations

import time
from typing import Final

from owlat.runtime.database.query import Query
from owlat.runtime.database.transaction import Transaction
from owlat.runtime.system_tables import (
    CLAIMS_BY_JOB,
    CLAIMS_BY_NODE,
    IN_PROGRESS,
    JOBS_BY_STATE,
    SCHEDULED_FUNCTIONS,
    SCHEDULER_CLAIMS,
)
from owlat.runtime.types import Document

LEASE_MS: Final = 6_000.0
HEARTBEAT_MS: Final = 1_500.0


def _now_ms() -> float:
    return time.time() * 1000


async def claim(txn: Transaction, job: Document, node: str) -> None:
    """Record that `node` runs `job` (in the transaction that moves it to inProgress)."""
    table = txn.catalog.table(SCHEDULER_CLAIMS)
    fields = {"jobId": job["_id"], "node": node, "expires": _now_ms() + LEASE_MS}
    await txn.insert(table, table.definition.validate(SCHEDULER_CLAIMS, fields, None))


async def _claim_of(txn: Transaction, job_id: str) -> Document | None:
    table = txn.catalog.table(SCHEDULER_CLAIMS)
    claimed: Document | None = await (
        Query(txn, table).with_index(CLAIMS_BY_JOB, lambda q: q.eq("jobId", job_id)).first()
    )
    return claimed


async def release(txn: Transaction, job_id: str) -> None:
    """Forget the claim on a job (it finished, or was failed by recovery)."""
    claimed = await _claim_of(txn, job_id)
    if claimed is not None:
        await txn.delete(txn.catalog.table(SCHEDULER_CLAIMS), claimed)


async def _own(txn: Transaction, node: str) -> list[Document]:
    table = txn.catalog.table(SCHEDULER_CLAIMS)
    owned: list[Document] = await (
        Query(txn, table).with_index(CLAIMS_BY_NODE, lambda q: q.eq("node", node)).collect()
    )
    return owned


async def renew(txn: Transaction, node: str) -> None:
    """Extend the lease of every claim of `node`."""
    table = txn.catalog.table(SCHEDULER_CLAIMS)
    expires = _now_ms() + LEASE_MS
    for claimed in await _own(txn, node):
        await txn.update(table, claimed, {**claimed, "expires": expires})


async def release_all(txn: Transaction, node: str) -> None:
    """Drop every claim of `node` (it stops: its actions are interrupted)."""
    table = txn.catalog.table(SCHEDULER_CLAIMS)
    for claimed in await _own(txn, node):
        await txn.delete(table, claimed)


async def orphans(txn: Transaction) -> tuple[list[Document], float | None]:
    """In-progress jobs whose claim is missing or expired, and when the next live claim of
    another job expires (None: no live claim)."""
    table = txn.catalog.table(SCHEDULED_FUNCTIONS)
    running = await (
        Query(txn, table)
        .with_index(JOBS_BY_STATE, lambda q: q.eq("state.kind", IN_PROGRESS))
        .collect()
    )
    now, orphaned, next_expiry = _now_ms(), [], None
    for job in running:
        claimed = await _claim_of(txn, job["_id"])
        if claimed is None or claimed["expires"] <= now:
            orphaned.append(job)
        else:
            expires = float(claimed["expires"])
            next_expiry = expires if next_expiry is None else min(next_expiry, expires)
    return orphaned, next_expiry
