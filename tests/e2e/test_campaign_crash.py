"""kill -9 of `owlat dev` three times while a campaign to 2,000 contacts is delivered
through SMTP to a sink (aiosmtpd, in this process): every recipient gets exactly one
message (the sink counts by recipient and by Message-ID), none is skipped, and the
campaign's counters equal the sink's counts. The issue's full scale is
`OWLAT_CRASH_CONTACTS=200000 OWLAT_CRASH_KILLS=5` (BENCHMARKS.md: issues 16 and 17,
session 13); the suite runs the small one. On SQLite and on PostgreSQL. Each kill lands
after ~400 messages, with up to WORKERS * BATCH (200) claimed, one transaction in flight
per pooled connection, and every restart must deliver 400 more before the next kill.

Set-up: the owner signs up over HTTP; with the server stopped, the same data folder is
opened in process to add a verified sending domain (DNS on loopback), SMTP to the sink, a
list of the contacts, a published template and the campaign, which is sent there too
(its walk and delivery are scheduled jobs: the server runs them). Then the server starts
and is killed after every ~400 messages, and started again.

SMTP relays do not dedupe, so a send claimed (`sending`) when the server died is decided,
once its lease (6 s here) has passed, by the crashed process's attempt journal
(`lib/sending/journal.py`): no attempt, or a transaction that never wrote the end of its
DATA (the sink discards it): back to `queued`, sent once; the end of DATA written: `sent`,
DELIVERY_UNCONFIRMED. The one window where that is wrong (the end written, yet never taken
by the relay: still in the process, or reset by the kernel over an unread reply) is empty
here: messages of a few KB on loopback leave at once, and the only reply a connection can
have unread at the kill is the answer to an end the sink already took. So every send ends
`sent`, none DELIVERY_UNCERTAIN, and what is `sent` is what the sink has.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.app.campaign_setup import address
from tests.app.sending.servers import Sink, smtp_server
from tests.e2e.owlat_app import sign_in, sign_up
from tests.e2e.processes import LoggedServer
from tests.e2e.smtp_sink import received, sent_campaign, smtp_owner

CONTACTS = int(os.environ.get("OWLAT_CRASH_CONTACTS", "2000"))
KILLS = int(os.environ.get("OWLAT_CRASH_KILLS", "3"))
EVERY = CONTACTS // (KILLS + 2)  # messages at the sink between kills
WAIT = max(120, EVERY // 25)  # seconds allowed for each stretch (25 messages/s at worst)

pytestmark = pytest.mark.timeout(max(300, CONTACTS // 25 * 2))
DOMAIN = "news-example.com"
ENV = {"OWLAT_APP": "owlat.app", "OWLAT_AUTH_ISSUERS": "", "OWLAT_SEND_LEASE_SECONDS": "6"}


async def _prepare(data_dir: Path, port: int, database_url: str) -> str:
    """The campaign, ready and sent (in process, no scheduler: the server runs its jobs)."""
    async with smtp_owner(data_dir, port, database_url, DOMAIN) as (owlat, owner, org):
        return await sent_campaign(owlat, owner, org, CONTACTS, f"news@{DOMAIN}")


async def test_kills_during_a_campaign_neither_double_nor_skip(
    tmp_path: Path, database_url: str
) -> None:
    sink = Sink()
    async with smtp_server(sink) as port:
        server = LoggedServer(tmp_path / "data", env={**ENV, "OWLAT_DATABASE_URL": database_url})
        await server.start()
        await sign_up(server.url, server.site_url)
        await server.stop()
        campaign_id = await _prepare(server.data_dir, port, database_url)
        try:
            for kill in range(KILLS):
                await server.start()
                async with asyncio.timeout(WAIT):
                    while len(sink.received) < EVERY * (kill + 1):  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                await server.kill()
            await server.start()
            account = await sign_in(server.url, server.site_url)
            async with asyncio.timeout(WAIT):
                while True:
                    progress = await account.call(
                        "query", "campaigns:progress", {"campaignId": campaign_id}
                    )
                    if progress["status"] == "sent":
                        break
                    await asyncio.sleep(0.5)
            rows = await _rows(account, campaign_id)
        finally:
            await server.stop()
    messages = received(sink.received)
    by_recipient = Counter(recipient for recipient, _ in messages)
    assert max(by_recipient.values()) == 1, "a recipient got the campaign twice"
    assert max(Counter(mid for _, mid in messages).values()) == 1
    assert len(rows) == CONTACTS
    assert set(by_recipient) == {address(i) for i in range(CONTACTS)}, "a recipient skipped"
    assert {row["status"] for row in rows} == {"sent"}
    assert set(messages) == {(row["email"], f"<{row['messageId']}>") for row in rows}
    assert (progress["sent"], progress["failed"], progress["pending"]) == (len(messages), 0, 0)
    unconfirmed = sum(1 for row in rows if row.get("errorCode") == "DELIVERY_UNCONFIRMED")
    print(
        f"{CONTACTS} recipients, {KILLS} kills: {len(messages)} messages at the sink, "
        f"{unconfirmed} sent DELIVERY_UNCONFIRMED (the end of DATA written, not recorded)"
    )


async def _rows(account: Any, campaign_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await account.call(
            "query",
            "campaigns:sends",
            {"campaignId": campaign_id, "paginationOpts": {"numItems": 500, "cursor": cursor}},
        )
        rows.extend(page["page"])
        if page["isDone"]:
            return rows
        cursor = page["continueCursor"]
