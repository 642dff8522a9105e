"""Idempotent mutations per (sessionId, requestId): the `_session_requests` system table.

A sync client re-sends every mutation it has not seen confirmed when its socket reconnects
(with the same requestId, and for npm clients the same sessionId), so a mutation may arrive
twice. The outcome of each successful mutation sent over a sync session is written to
`_session_requests` *in the mutation's own transaction*: either both the mutation's writes
and the record commit, or neither. A re-sent mutation first looks for its record, in its
own serializable transaction, and when it finds one returns the stored result and commit
timestamp without running again. Failed mutations are not recorded: they wrote nothing, so
running them again is harmless.

Records are kept for `RETENTION_MS` (a client reconnects within seconds; a day is ample)
and deleted by `prune`. A result too large to store in a document is not recorded (the
mutation then runs again if re-sent), rather than failing a mutation that succeeded.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Final

from owlat.runtime.database.query import Query
from owlat.runtime.database.transaction import RecordedOutcome, Transaction
from owlat.runtime.schema import BY_CREATION_TIME
from owlat.runtime.system_tables import REQUESTS_BY_SESSION, SESSION_REQUESTS
from owlat.runtime.types import Int64, Value
from owlat.runtime.values import convex_to_json, dumps, json_to_convex, loads

logger = logging.getLogger("owlat.runtime")

RETENTION_MS: Final = 24 * 3600 * 1000
PRUNE_BATCH: Final = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class SessionRequest:
    """One request of one sync session; as a mutation hook it makes the call idempotent."""

    session_id: str
    request_id: int

    async def before(self, txn: Transaction) -> RecordedOutcome | None:
        return await find(txn, self)

    async def after(self, txn: Transaction, value: Value, ts: int) -> None:
        await record(txn, self, value, ts)


async def find(txn: Transaction, request: SessionRequest) -> RecordedOutcome | None:
    """The recorded outcome of `request`, if it already succeeded."""
    table = txn.catalog.table(SESSION_REQUESTS)
    document = await (
        Query(txn, table)
        .with_index(
            REQUESTS_BY_SESSION,
            lambda q: q.eq("sessionId", request.session_id).eq(
                "requestId", float(request.request_id)
            ),
        )
        .first()
    )
    if document is None:
        return None
    return RecordedOutcome(json_to_convex(loads(document["result"])), int(document["ts"]))


async def record(txn: Transaction, request: SessionRequest, value: Value, ts: int) -> None:
    """Record a successful mutation's outcome in its own transaction."""
    table = txn.catalog.table(SESSION_REQUESTS)
    encoded = dumps(convex_to_json(value)).decode()
    if len(encoded) > txn.limits.max_document_bytes // 2:
        logger.warning(
            "result of request %s/%s is %d bytes: not recorded for idempotency",
            request.session_id,
            request.request_id,
            len(encoded),
        )
        return
    await txn.insert(
        table,
        {
            "sessionId": request.session_id,
            "requestId": float(request.request_id),
            "ts": Int64(ts),
            "result": encoded,
        },
    )


async def prune(txn: Transaction, *, now_ms: float | None = None, limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` records older than `RETENTION_MS`; returns how many."""
    table = txn.catalog.table(SESSION_REQUESTS)
    cutoff = (time.time() * 1000 if now_ms is None else now_ms) - RETENTION_MS
    old = await (
        Query(txn, table)
        .with_index(BY_CREATION_TIME, lambda q: q.lt("_creationTime", cutoff))
        .take(limit)
    )
    for document in old:
        await txn.delete(table, document)
    return len(old)
