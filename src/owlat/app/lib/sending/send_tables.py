"""The tables whose rows are sends (one row per (recipient, message), `send_states.py`).

Tracking links, provider events and outgoing webhooks work on any of them: they tell a
send's table from its id (`table_of`) or find a send by the provider's message id
(`by_provider_message`), and `feedback.py` applies the same lifecycle to each. A table
plugs in with one `SendTable` line in `SEND_TABLES`; its rows need the fields of
`transactionalSends` that the lifecycle reads and writes (organizationId, email,
contactId?, kind, status, the timestamps, counters and provider fields of §10.1) and a
`by_provider_message_id` index on `providerMessageId`.

    transactionalSends  transactional, automation and test sends: the transactional
                        email's `stats` (`transactional_counts.count_outcome`)
    emailSends          campaign sends: the campaign's `campaignStats` counters
                        (`campaigns.walk.count_feedback`); provenance `campaignId`
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from owlat.app.lib.campaigns.walk import count_feedback
from owlat.app.lib.sending.transactional_counts import count_outcome
from owlat.runtime import MutationCtx, QueryCtx

# (ctx, send row, counter, delta): counters of the table's parent (a campaign's stats),
# moved by the lifecycle; counter names: delivered, opened, humanOpened, clicked, bounced,
# hardBounced, softBounced, complained.
Count = Callable[[MutationCtx, Mapping[str, Any], str, int], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class SendTable:
    name: str
    count: Count | None = None  # None: no counters beyond the row's own
    # webhook `email.sent` provenance: the field naming the message the send came from
    source_field: str = "transactionalEmailId"


SEND_TABLES: dict[str, SendTable] = {
    table.name: table
    for table in (
        SendTable("transactionalSends", count=count_outcome),
        SendTable("emailSends", count=count_feedback, source_field="campaignId"),
    )
}


def table_of(ctx: QueryCtx, send_id: str) -> SendTable | None:
    """The send table `send_id` is an id of, or None (malformed, or another table's)."""
    for table in SEND_TABLES.values():
        if ctx.db.normalize_id(table.name, send_id) is not None:
            return table
    return None


async def by_provider_message(
    ctx: QueryCtx, provider: str, message_id: str, organization_id: str | None = None
) -> tuple[SendTable, dict[str, Any]] | None:
    """The send `provider` accepted as `message_id` (in any send table; of
    `organization_id` only, when given), or None."""
    for table in SEND_TABLES.values():
        rows = await (
            ctx.db.query(table.name)
            .with_index("by_provider_message_id", lambda q: q.eq("providerMessageId", message_id))
            .take(10)
        )
        for row in rows:
            mine = organization_id is None or row["organizationId"] == organization_id
            if row.get("providerType") == provider and mine:
                return table, dict(row)
    return None
