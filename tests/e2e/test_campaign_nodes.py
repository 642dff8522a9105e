"""Two `owlat serve` nodes on one PostgreSQL database share a campaign's delivery without
duplicates (issue 17, reliability).

Set-up, in this process with no scheduler: a verified sending domain (DNS on loopback),
SMTP to a sink (aiosmtpd, in this process), a list of 2,000 contacts, a published template,
the campaign sent (its walk and delivery are scheduled jobs). Then two `owlat serve`
processes start on the database and run those jobs; each delivery worker reschedules
itself after every claimed batch, so the nodes take turns. The sink tells which node sent
each message by the process owning the client end of its connection (/proc), and parses
its Message-ID. Every recipient gets exactly one message, with a Message-ID of its own;
every message came from one of the nodes; the campaign ends `sent` with the sink's count.
How the messages split between the nodes is the scheduler's race (on a busy machine one node
can win every turn), so the split is printed, not asserted.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from owlat.app.lib.campaigns.walk import stats_of
from owlat.runtime.testing import in_query, open_test_app
from tests.app.campaign_setup import address
from tests.app.conftest import signed_in, with_organization
from tests.app.domains.dns_server import DnsServer
from tests.app.mail_setup import configure, smtp_domain
from tests.app.sending.servers import Sink, smtp_server
from tests.e2e.processes import LoggedServer
from tests.e2e.smtp_sink import sent_campaign
from tests.postgres import PostgresForTests

pytestmark = pytest.mark.timeout(120)

CONTACTS = 2000
DOMAIN = "news-example.com"
# the key sealing provider credentials, shared by the set-up and the nodes
SECRET_KEY = "two-nodes-share-one-key-of-32-characters"


class NodeSink(Sink):
    """A sink noting, per message, the pid of the node that sent it (`pids`: the nodes)."""

    def __init__(self) -> None:
        super().__init__()
        self.pids: list[int] = []
        self.senders: list[int] = []  # per received envelope
        self._by_peer: dict[int, int] = {}

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        port = session.peer[1]
        if port not in self._by_peer:
            self._by_peer[port] = _owner_of(port, self.pids)
        answer = await super().handle_DATA(server, session, envelope)
        if answer.startswith("250"):
            self.senders.append(self._by_peer[port])
        return answer


def _owner_of(client_port: int, pids: list[int]) -> int:
    """The pid among `pids` holding the loopback TCP socket bound to `client_port` (0 if
    none does)."""
    local = f"0100007F:{client_port:04X}"
    inodes = {
        fields[9]
        for fields in _tcp_entries()
        if fields[1] == local  # the client's end: its local address is the peer we saw
    }
    for pid in pids:
        for fd in _fds(pid):
            if any(fd == f"socket:[{inode}]" for inode in inodes):
                return pid
    return 0


def _tcp_entries() -> Iterator[list[str]]:
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            yield line.split()


def _fds(pid: int) -> Iterator[str]:
    folder = f"/proc/{pid}/fd"
    for name in os.listdir(folder):
        try:
            yield os.readlink(f"{folder}/{name}")
        except FileNotFoundError:
            continue


async def _prepare(data_dir: Path, url: str, dns: DnsServer, port: int) -> str:
    """The campaign to CONTACTS contacts, sent (no scheduler here: the nodes run its jobs)."""
    configure(data_dir, dns)
    async with open_test_app(
        "owlat.app", data_dir, scheduler_parallelism=None, database_url=url
    ) as owlat:
        owner = await signed_in(owlat, "owner@news.example")
        organization_id = await with_organization(owner, "news")
        await owner.mutation(
            "emailProviders:saveSmtp", {"host": "127.0.0.1", "port": port, "security": "none"}
        )
        await smtp_domain(owner, dns, DOMAIN)
        return await sent_campaign(owlat, owner, organization_id, CONTACTS, f"news@{DOMAIN}")


async def _outcome(data_dir: Path, url: str, campaign_id: str) -> tuple[str, int, int]:
    """The campaign's status and its `sent` and `failed` counters."""
    async with open_test_app(
        "owlat.app", data_dir, scheduler_parallelism=None, database_url=url
    ) as owlat:

        async def read(ctx: Any) -> tuple[str, int, int]:
            campaign = await ctx.db.get(campaign_id)
            stats = await stats_of(ctx, campaign_id)
            assert stats is not None
            return campaign["status"], int(stats["sent"]), int(stats["failed"])

        status, sent, failed = await in_query(owlat, read)
        return status, sent, failed


async def test_two_nodes_share_a_campaign_and_send_each_message_once(
    tmp_path: Path, postgres: PostgresForTests, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OWLAT_SECRET_KEY", SECRET_KEY)
    sink = NodeSink()
    with postgres.schema() as url, DnsServer.running() as dns:
        async with smtp_server(sink) as port:
            started = time.monotonic()
            campaign_id = await _prepare(tmp_path / "setup", url, dns, port)
            print(f"set up in {time.monotonic() - started:.1f} s")
            env = {
                "OWLAT_APP": "owlat.app",
                "OWLAT_AUTH_ISSUERS": "",
                "OWLAT_SECRET_KEY": SECRET_KEY,
                "OWLAT_DATABASE_URL": url,
                "OWLAT_ALLOW_PRIVATE_SMTP": "1",  # the sink is on 127.0.0.1
                "OWLAT_DNS_NAMESERVERS": f"127.0.0.1:{dns.port}",
            }
            nodes = [
                LoggedServer(tmp_path / f"node{n}", env=env, command="serve") for n in range(2)
            ]
            try:
                await asyncio.gather(*(node.start() for node in nodes))
                sink.pids = [node.process.pid for node in nodes if node.process is not None]
                print(f"nodes up at {time.monotonic() - started:.1f} s")
                for _ in range(1200):
                    if len(sink.received) >= CONTACTS:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"{len(sink.received)} of {CONTACTS} messages in 60 s")
                print(f"delivered at {time.monotonic() - started:.1f} s")
                await asyncio.sleep(1.0)  # a late duplicate would arrive now
            finally:
                await asyncio.gather(*(node.stop() for node in nodes))
        outcome = await _outcome(tmp_path / "setup", url, campaign_id)
    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    received = [
        (recipient, str(parser.parsebytes(envelope.original_content or b"")["Message-ID"]))
        for envelope in sink.received
        for recipient in envelope.rcpt_tos
    ]
    by_recipient = Counter(recipient for recipient, _ in received)
    assert by_recipient == Counter(address(i) for i in range(CONTACTS)), "one message each"
    assert len({message_id for _, message_id in received}) == CONTACTS
    per_node = Counter(sink.senders)
    assert set(per_node) <= set(sink.pids), f"a message from no node: {per_node}"
    assert outcome == ("sent", CONTACTS, 0)
    print(f"messages per node: {dict(per_node)}")
