"""Recovery of campaign sends left `sending` by a crash, read from the attempt journals
(lib/sending/journal.py), on SQLite and PostgreSQL: a send whose claim's journal is known
and shows no attempt goes back to `queued`; every other one (attempted; a journal of
another boot, torn, of a live process, or on another node: not here) is failed
DELIVERY_UNCERTAIN; journals nobody needs any more are deleted.

No scheduler runs: the test walks the campaign and claims its sends through the real
internal functions, as a delivery worker would, then writes the journals the crashed
process would have left (its lock gone with it) and runs the recovery action."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib.sending import journal
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query, open_test_app
from tests.app.campaign_setup import address, ready_campaign
from tests.app.conftest import owner_and_editor, providers_closed
from tests.app.domains.dns_server import DnsServer
from tests.app.mail_setup import configure
from tests.app.sending.servers import Sink, smtp_server
from tests.app.test_campaigns import SENDER, _sends, _smtp_list

LEASE_MS = 300.0


@pytest.fixture
async def owlat(tmp_path: Path, database_url: str, dns: DnsServer) -> AsyncIterator[Application]:
    configure(tmp_path, dns, send_lease_ms=LEASE_MS)
    async with (
        providers_closed(),
        open_test_app(
            "owlat.app", tmp_path, database_url=database_url, scheduler_parallelism=None
        ) as application,
    ):
        yield application


async def _claimed(owlat: Application, tmp_path: Path, dns: DnsServer, count: int) -> str:
    """A campaign to `count` members walked and its sends claimed under journal "dead"."""
    team = await owner_and_editor(owlat)
    async with smtp_server(Sink()) as port:
        list_id, _ = await _smtp_list(owlat, team, port, dns, count)
    campaign_id = await ready_campaign(team[0], list_id, SENDER, team[1])
    await team[0].mutation("campaigns:send", {"campaignId": campaign_id})
    ident = {"campaignId": campaign_id}
    for hop in range(10):
        await owlat.run_mutation("campaignSends:walk", {**ident, "hop": hop}, internal=True)
    campaign = await in_query(owlat, lambda ctx: ctx.db.get(campaign_id))
    batch = await owlat.run_mutation(
        "campaignSends:claim",
        {**ident, "generation": campaign["workerGeneration"], "routeProviders": ["smtp"],
         "leaseMs": LEASE_MS, "journal": "dead"},
        internal=True,
    )  # fmt: skip
    assert len(batch.value["sends"]) == count
    return campaign_id


def _journal(folder: Path, name: str, boot: str | None, tokens: list[str], tail: str = "") -> None:
    boot = boot or journal.boot_id()
    lines = [f"{journal.MAGIC} boot={boot} pid=1", *tokens]
    (folder / name).write_text("".join(line + "\n" for line in lines) + tail)


async def test_recovery_requeues_only_sends_a_known_journal_shows_unattempted(
    owlat: Application, tmp_path: Path, dns: DnsServer
) -> None:
    campaign_id = await _claimed(owlat, tmp_path, dns, 7)
    rows = {row["email"]: row for row in await _sends(owlat, campaign_id)}
    by = {
        address(0): "dead",  # attempted
        address(1): "dead",  # not attempted: back to queued
        address(2): "otherboot",  # a journal of before a reboot
        address(3): "torn",  # its last line cut
        address(4): "alive",  # its writer still holds it
        address(5): "elsewhere",  # claimed on another node: no journal here
        address(6): "dead",  # not attempted either
    }

    async def name_claims(ctx: Any) -> None:
        for email, name in by.items():
            await ctx.db.patch(rows[email]["_id"], {"claimedBy": name})

    await in_mutation(owlat, name_claims)

    def tok(i: int) -> str:
        return journal.token(rows[address(i)]["_id"], rows[address(i)]["claimedAt"])

    folder = tmp_path / journal.FOLDER
    folder.mkdir(exist_ok=True)
    _journal(folder, "dead", None, [tok(0), "some-other-send 1"])
    _journal(folder, "otherboot", "0" * 8 + "-not-this-boot", [])
    _journal(folder, "torn", None, [], tail=tok(0)[:5])
    _journal(folder, "alive", None, [])
    alive = os.open(folder / "alive", os.O_RDONLY)
    fcntl.flock(alive, fcntl.LOCK_EX)
    try:
        await asyncio.sleep(LEASE_MS / 1000 + 0.1)
        await owlat.run_action("campaignSends:recover", {"idleMs": 0}, internal=True)
        after = {row["email"]: row for row in await _sends(owlat, campaign_id)}
        assert {email: after[email]["status"] for email in by} == {
            address(0): "failed",
            address(1): "queued",
            address(2): "failed",
            address(3): "failed",
            address(4): "failed",
            address(5): "failed",
            address(6): "queued",
        }
        failed = [row for row in after.values() if row["status"] == "failed"]
        assert {row["errorCode"] for row in failed} == {"DELIVERY_UNCERTAIN"}
        assert after[address(1)]["attempts"] == 0  # its claim undone: never attempted
        stalled = await owlat.run_query("campaignSends:stalled", {}, internal=True)
        assert stalled.value == []
        # the journals: kept while a stalled send names them, or alive; a dead one is
        # deleted once seen dead, and named by none, for a lease
        names = sorted(path.name for path in folder.iterdir())
        assert names == ["alive", "dead", "otherboot", "torn"]
        await owlat.run_action("campaignSends:recover", {"idleMs": 0}, internal=True)
        assert sorted(path.name for path in folder.iterdir()) == names
        await asyncio.sleep(LEASE_MS / 1000 + 0.1)
        await owlat.run_action("campaignSends:recover", {"idleMs": 0}, internal=True)
        assert sorted(path.name for path in folder.iterdir()) == ["alive"]
    finally:
        os.close(alive)
