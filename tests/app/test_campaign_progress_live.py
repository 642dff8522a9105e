"""A subscribed `campaigns:progress` follows a sending campaign live (issue 17: "a
subscribed campaign-progress query sees each 1 % of progress within 1 s"), on SQLite and
PostgreSQL.

The real server (`start_site`): the owner's browser signs up, and its sync socket
subscribes to the campaign's progress; a campaign to 1,000 contacts is delivered through
SMTP to a sink (aiosmtpd). The server records, at each commit, the campaign's `sent` count
(`campaignStats`), and the socket the time each progress value arrives. Every 1 % step
(10 sends) must reach the subscriber within 1 s of the commit that recorded it (sends are
recorded a claimed batch at a time, so a value often covers several steps; how long a batch
takes is the delivery's business, not the subscription's, and is not bounded here).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from owlat.runtime.database.commits import Commit
from owlat.runtime.testing import in_query
from tests.app.campaign_setup import list_audience, ready_campaign
from tests.app.conftest import Caller, Site, start_site
from tests.app.domains.dns_server import DnsServer
from tests.app.mail_setup import LOOPBACK_SINKS, smtp_domain
from tests.app.sending.servers import Sink, smtp_server
from tests.e2e.sync_harness import RawSocket
from tests.e2e.sync_messages import add, modify, mutation

pytestmark = pytest.mark.timeout(60)

CONTACTS = 1000
DOMAIN = "news-example.com"
WITHIN = 1.0  # seconds


@pytest.fixture
async def site(tmp_path: Path, database_url: str, dns: DnsServer) -> AsyncIterator[Site]:
    options = {"dns_nameservers": (("127.0.0.1", dns.port),), "smtp_hosts": LOOPBACK_SINKS}
    async with start_site(tmp_path, database_url=database_url, **options) as running:
        yield running


async def _owner(site: Site) -> tuple[Caller, str, str]:
    """The owner signed up in a browser and active in a new organization: an in-process
    caller on a session of theirs, the organization, and the browser's sync token."""
    async with site.browser() as browser:
        credentials = {"email": "owner@news.example", "password": "a-password!", "name": "O"}
        assert (await browser.post("/sign-up/email", json=credentials)).status_code == 200
        token = (await browser.get("/token")).json()["token"]

    async def user(ctx: Any) -> dict[str, Any]:
        return dict(next(iter(await ctx.db.query("users").collect())))

    found = await in_query(site.application, user)
    session = await site.application.run_mutation(
        "auth:createSession", {"userId": found["_id"], "tokenHash": "in-process"}, internal=True
    )
    owner = Caller(site.application, found["_id"], session.value["_id"], found["email"])
    organization = await owner.mutation("organizations:create", {"name": "News", "slug": "news"})
    return owner, str(organization["_id"]), token


async def test_a_subscriber_sees_every_percent_of_progress_within_a_second(
    site: Site, dns: DnsServer
) -> None:
    owner, organization_id, token = await _owner(site)
    sink = Sink()
    async with smtp_server(sink) as port:
        await owner.mutation(
            "emailProviders:saveSmtp", {"host": "127.0.0.1", "port": port, "security": "none"}
        )
        await smtp_domain(owner, dns, DOMAIN)
        list_id = await owner.mutation(
            "mailingLists:create", {"name": "Readers", "requireDoubleOptIn": False}
        )
        await list_audience(site.application, organization_id, list_id, CONTACTS)
        campaign_id = await ready_campaign(owner, list_id, f"news@{DOMAIN}")

        recorded: list[tuple[float, int]] = []  # (when committed, campaignStats.sent)

        def on_commit(commit: Commit) -> None:
            for change in commit.write_set.documents:
                if change.table == "campaignStats" and change.new is not None:
                    recorded.append((time.monotonic(), int(change.new.get("sent") or 0)))

        site.application.on_commit(on_commit)
        arrived: list[tuple[float, dict[str, Any]]] = []
        socket_url = site.url.replace("http://", "ws://") + "/api/sync"
        async with RawSocket.open(socket_url) as socket:
            await socket.send(
                {"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token}
            )
            await socket.send(
                mutation(0, "organizations:setActive", {"organizationId": organization_id})
            )
            while (answer := await socket.receive())["type"] != "MutationResponse":
                pass
            assert answer["success"] is True, answer
            await socket.send(
                modify(0, 1, add(0, "campaigns:progress", {"campaignId": campaign_id}))
            )
            await owner.mutation("campaigns:send", {"campaignId": campaign_id})
            async with asyncio.timeout(40):
                while not arrived or arrived[-1][1]["status"] != "sent":
                    message = await socket.receive(within=10)
                    if message["type"] != "Transition":
                        continue
                    for update in message["modifications"]:
                        assert update["type"] == "QueryUpdated", update
                        arrived.append((time.monotonic(), update["value"]))
    assert len(sink.received) == CONTACTS
    assert arrived[-1][1]["sent"] == CONTACTS
    _assert_live(recorded, arrived)


def _assert_live(
    recorded: list[tuple[float, int]], arrived: list[tuple[float, dict[str, Any]]]
) -> None:
    """Each 1 % step reached the subscriber within WITHIN of the commit that recorded it."""
    lags = []
    for step in range(1, 101):
        needed = step * CONTACTS // 100
        committed = next(at for at, sent in recorded if sent >= needed)
        seen = next(at for at, value in arrived if value["sent"] >= needed)
        lags.append(seen - committed)
    assert max(lags) <= WITHIN, f"a step reached the subscriber {max(lags):.2f} s late"
    print(f"{len(arrived)} progress values, a step's lag at most {max(lags) * 1000:.0f} ms")
