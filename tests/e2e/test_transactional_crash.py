"""kill -9 of `owlat dev` during a burst of POST /api/v1/transactional requests sent
through SMTP to a sink (aiosmtpd, in this process, counting by recipient and by
Message-ID): no message is sent twice and none is lost. The burst is the issue's 2,000
requests (`OWLAT_CRASH_REQUESTS` sets another size; at most 600 on PostgreSQL, whose
intake is slower; BENCHMARKS.md: issues 16 and 17, session 13).

SMTP relays do not dedupe, so a send left `sending` by the kill is decided, after its
lease (OWLAT_SEND_LEASE_SECONDS, 2 s here), by the dead process's attempt journal
(`lib/sending/journal.py`): never attempted, or an SMTP transaction that never wrote the
end of its DATA (the sink discarded it): back to `queued`, sent once; the end written:
`sent`, DELIVERY_UNCONFIRMED (the sink has it; the window where it would not is empty on
loopback: `test_campaign_crash.py`). Sends left `queued` are delivered by their scheduled
job or, if the kill took the job with it, by the recovery that runs at start. After the
restart, every request that got no answer is sent again with its Idempotency-Key: one the
dead server had recorded is answered with its first answer (and sends nothing), the
others are accepted now. Then the sink holds exactly one message per request: one per
recipient and per Message-ID, and every send is `sent`."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.sending.servers import Sink, smtp_server
from tests.e2e.owlat_app import (
    Account,
    api_keys,
    published_receipt,
    request_body,
    sign_in,
    sign_up,
)
from tests.e2e.processes import LoggedServer
from tests.e2e.smtp_sink import received, smtp_owner

REQUESTS = int(os.environ.get("OWLAT_CRASH_REQUESTS", "2000"))
pytestmark = pytest.mark.timeout(240 + REQUESTS // 10)  # two starts, set-up, a loaded machine
# PostgreSQL's intake is several times slower (BENCHMARKS.md): a burst of at most 600
POSTGRES_REQUESTS = min(REQUESTS, 600)
DOMAIN = "shop-example.com"
PER_KEY = 10  # within a key's burst of 15
KILL_AFTER = 0.2  # the share of the burst accepted before the kill
DELIVERED = 0.025  # and the share at the sink: the kill lands while messages are sent
REPLAYED = 50  # accepted requests sent again after the restart
CONNECTIONS = 32
ENV = {"OWLAT_APP": "owlat.app", "OWLAT_AUTH_ISSUERS": "", "OWLAT_SEND_LEASE_SECONDS": "2"}


class Burst:
    """Requests sent over `CONNECTIONS` connections, each with its Idempotency-Key; the
    202 answers by request index (a request whose connection failed has none)."""

    def __init__(self, site_url: str, keys: list[str]) -> None:
        self.site_url = site_url
        self.keys = keys
        self.accepted: dict[int, dict[str, Any]] = {}

    async def run(self, indexes: Iterable[int], retry: bool = False) -> None:
        """Send each request once; with `retry`, a request whose connection failed (a
        timeout on a loaded machine) is sent again with its key, as a client would."""
        queue = list(indexes)[::-1]
        limits = httpx.Limits(max_connections=CONNECTIONS)
        async with httpx.AsyncClient(
            base_url=self.site_url + "/api/v1", limits=limits, timeout=30
        ) as http:

            async def worker() -> None:
                while queue:
                    index = queue.pop()
                    headers = {
                        "authorization": f"Bearer {self.keys[index // PER_KEY]}",
                        "idempotency-key": f"order-{index}",
                    }
                    try:
                        response = await http.post(
                            "/transactional", json=request_body(index), headers=headers
                        )
                    except httpx.TransportError:
                        if retry:
                            queue.insert(0, index)
                        continue  # the server died: sent again after the restart
                    assert response.status_code == 202, response.text
                    replayed = response.headers.get("idempotent-replayed") == "true"
                    self.accepted[index] = {**response.json()["data"], "replayed": replayed}

            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))


async def sends(account: Account) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await account.call(
            "query",
            "transactionalSends:list",
            {"paginationOpts": {"numItems": 500, "cursor": cursor}},
        )
        rows.extend(page["page"])
        if page["isDone"]:
            return rows
        cursor = page["continueCursor"]


async def test_a_kill_during_a_burst_neither_loses_nor_doubles_a_message(
    tmp_path: Path, database_url: str
) -> None:
    database = {"OWLAT_DATABASE_URL": database_url} if database_url else {}
    requests = POSTGRES_REQUESTS if database_url else REQUESTS
    kill_after, delivered = int(requests * KILL_AFTER), int(requests * DELIVERED)
    sink = Sink()
    async with smtp_server(sink) as port:
        server = LoggedServer(tmp_path / "data", env={**ENV, **database})
        await server.start()
        await sign_up(server.url, server.site_url)
        await server.kill()  # (its log marked: the next start reads its own banner)
        async with smtp_owner(server.data_dir, port, database_url, DOMAIN) as (_, owner, _):
            await owner.mutation(
                "organizationSettings:update", {"defaultFromEmail": f"receipts@{DOMAIN}"}
            )
        await server.start()
        try:
            account = await sign_in(server.url, server.site_url)
            await published_receipt(account)
            keys = await api_keys(account, requests // PER_KEY)
            first = Burst(server.site_url, keys)
            sending = asyncio.create_task(first.run(range(requests)))
            async with asyncio.timeout(60):
                while len(first.accepted) < kill_after or len(sink.received) < delivered:  # noqa: ASYNC110 (polled: the answers tick by)
                    await asyncio.sleep(0.002)
            await server.kill()
            await sending
            before = dict(first.accepted)
            assert kill_after <= len(before) < requests, "the kill must land mid-burst"
            delivered_at_kill = len(sink.received)
            assert delivered_at_kill < len(before), "the kill must land mid-delivery"

            await server.start()
            account = await sign_in(server.url, server.site_url)
            replayed = random.Random(7).sample(sorted(before), REPLAYED)
            second = Burst(server.site_url, keys)
            await second.run([i for i in range(requests) if i not in before] + replayed, retry=True)
            assert len(second.accepted) == requests - len(before) + REPLAYED
            for index in replayed:
                answer = second.accepted[index]
                assert (
                    answer["replayed"]
                    and answer["transactionalEmailId"] == (before[index]["transactionalEmailId"])
                )
            # requests the dead server had recorded without answering them
            recorded_unanswered = sum(
                1 for i, a in second.accepted.items() if a["replayed"] and i not in before
            )

            async with asyncio.timeout(120):
                while True:
                    rows = await sends(account)
                    if len(rows) == requests and all(r["status"] == "sent" for r in rows):
                        break
                    await asyncio.sleep(0.5)
        finally:
            await server.stop()
    messages = received(sink.received)
    unconfirmed = sum(1 for r in rows if r.get("errorCode") == "DELIVERY_UNCONFIRMED")
    print(
        f"{requests} requests: accepted before the kill {len(before)}, at the sink at the "
        f"kill {delivered_at_kill}, recorded but unanswered {recorded_unanswered}, "
        f"sent DELIVERY_UNCONFIRMED {unconfirmed}, claimed again "
        f"{sum(1 for r in rows if r['attempts'] > 1)}"
    )
    assert max(Counter(to for to, _ in messages).values()) == 1, "a recipient got it twice"
    assert len(messages) == len(set(messages)) == requests
    assert len({message_id for _, message_id in messages}) == requests
    assert {(r["email"], f"<{r['messageId']}>") for r in rows} == set(messages)
