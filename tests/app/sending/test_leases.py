"""Lease renewal (lib/sending/leases.py), on SQLite and PostgreSQL: a delivery slower than
several leases (an SMTP sink that answers DATA late) keeps its claims: no recovery run
meanwhile takes them, and each send ends `sent` once; a renewal never takes back a send
that recovery ended or another claim took; a run that ended in an error renews nothing,
and this process's recovery then reads its own journal.

No scheduler runs: the tests call the delivery actions and recovery as the scheduler
would, with a lease of `LEASE_MS` (`SLOW_LEASE_MS` for the slow deliveries)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib import instance
from owlat.app.lib.sending import journal, leases
from owlat.runtime import internal, internal_action
from owlat.runtime.application import Application
from owlat.runtime.testing import in_query
from tests.app.campaign_setup import address
from tests.app.conftest import owner_and_editor
from tests.app.domains.dns_server import DnsServer
from tests.app.mail_setup import configure
from tests.app.sending import test_journal
from tests.app.sending.servers import Sink, smtp_server
from tests.app.test_campaigns import _once_each, _sends, _smtp_list

LEASE_MS = test_journal.LEASE_MS
# The slow deliveries' lease: its renewal (every third of it) is late by up to two thirds
# on a loaded machine before a send looks stalled.
SLOW_LEASE_MS = 1000.0
SLOW = 3.0  # seconds the sink takes to answer each DATA: three of those leases
owlat = test_journal.owlat  # the app with that lease (a fixture)


async def _delivered_while_recovering(
    owlat: Application, deliver: str, args: dict[str, Any], recover: str, recover_args: Any
) -> list[Any]:
    """Run the delivery action `deliver` while `recover` (and the stalled query beside it)
    runs every half lease; what the stalled queries answered."""
    seen: list[Any] = []
    stalled = recover.replace(":recover", ":stalled")

    async def recovering() -> None:
        while True:
            await asyncio.sleep(SLOW_LEASE_MS / 2000)
            seen.extend((await owlat.run_query(stalled, {}, internal=True)).value)
            await owlat.run_action(recover, recover_args, internal=True)

    watch = asyncio.create_task(recovering())
    try:
        await owlat.run_action(deliver, args, internal=True)
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    return seen


@contextlib.asynccontextmanager
async def _slow_relay(
    owlat: Application, tmp_path: Path, dns: DnsServer, members: int
) -> AsyncIterator[tuple[Any, Sink, str]]:
    """The team, SMTP to a sink that answers each DATA `SLOW` late, and a list of
    `members`, under the lease `SLOW_LEASE_MS`: (team, sink, list id)."""
    configure(tmp_path, dns, send_lease_ms=SLOW_LEASE_MS)
    team = await owner_and_editor(owlat)
    sink = Sink(delay=SLOW)
    async with smtp_server(sink) as port:
        list_id, _ = await _smtp_list(owlat, team, port, dns, members)
        yield team, sink, list_id


async def test_a_transactional_delivery_slower_than_the_lease_keeps_its_claims(
    owlat: Application, tmp_path: Path, dns: DnsServer
) -> None:
    async with _slow_relay(owlat, tmp_path, dns, 0) as (team, sink, _):
        send_ids = await test_journal.enqueued(owlat, team[2], 3)
        stalled = await _delivered_while_recovering(
            owlat,
            "transactionalSends:deliver",
            {"sendIds": send_ids, "leaseMs": SLOW_LEASE_MS},
            "transactionalSends:recover",
            {},
        )
    assert stalled == []  # renewed: never past its lease, on any node
    rows = [await in_query(owlat, lambda ctx, i=i: ctx.db.get(i)) for i in send_ids]
    assert [(row["status"], row.get("errorCode"), row["attempts"]) for row in rows] == [
        ("sent", None, 1)
    ] * 3
    assert _once_each(sink) == {address(i) for i in range(3)}


async def test_a_campaign_batch_slower_than_the_lease_keeps_its_claims(
    owlat: Application, tmp_path: Path, dns: DnsServer
) -> None:
    async with _slow_relay(owlat, tmp_path, dns, 3) as (team, sink, list_id):
        ident = await test_journal.walked(owlat, team, list_id)
        stalled = await _delivered_while_recovering(
            owlat, "campaignSends:deliver", ident, "campaignSends:recover", {"idleMs": 0}
        )
    assert stalled == []
    rows = await _sends(owlat, ident["campaignId"])
    assert sorted((row["status"], row.get("errorCode")) for row in rows) == [("sent", None)] * 3
    assert _once_each(sink) == {address(i) for i in range(3)}
    progress = await team[0].query("campaigns:progress", {"campaignId": ident["campaignId"]})
    assert (progress["sent"], progress["failed"]) == (3, 0)


async def test_a_renewal_never_takes_back_a_send_recovered_or_claimed_again(
    owlat: Application, dns: DnsServer
) -> None:
    team = await owner_and_editor(owlat)
    async with smtp_server(Sink()) as port:
        await _smtp_list(owlat, team, port, dns, 0)
    send_ids = await test_journal.enqueued(owlat, team[2], 3)
    claim = {"routeProviders": ["smtp"], "leaseMs": LEASE_MS, "journal": "gone"}
    first = await owlat.run_mutation(
        "transactionalSends:claim", {**claim, "sendIds": send_ids}, internal=True
    )
    claims = [{"sendId": c["sendId"], "claimedAt": c["claimedAt"]} for c in first.value["claimed"]]

    async def renew(journal_name: str = "gone") -> list[str]:
        args = {"claims": claims, "journal": journal_name}
        return list(
            (await owlat.run_mutation("transactionalSends:renew", args, internal=True)).value
        )

    assert await renew() == send_ids  # held as claimed: renewed
    assert await renew("another") == []  # not this journal's claims
    await asyncio.sleep(LEASE_MS / 1000 + 0.1)
    # the process is gone (its journal is not here): recovery fails them uncertain ...
    await owlat.run_action("transactionalSends:recover", {}, internal=True)
    before = [await in_query(owlat, lambda ctx, i=i: ctx.db.get(i)) for i in send_ids]
    assert {(row["status"], row["errorCode"]) for row in before} == {
        ("failed", "DELIVERY_UNCERTAIN")
    }
    # ... and a late renewal does not bring them back
    assert await renew() == []
    after = [await in_query(owlat, lambda ctx, i=i: ctx.db.get(i)) for i in send_ids]
    assert after == before
    # a send claimed again since (requeued by recovery): the old claim's renewal misses
    fresh = await test_journal.enqueued(owlat, team[2], 1)
    old = await owlat.run_mutation(
        "transactionalSends:claim", {**claim, "sendIds": fresh}, internal=True
    )
    claims = [{"sendId": fresh[0], "claimedAt": old.value["claimed"][0]["claimedAt"]}]
    await asyncio.sleep(LEASE_MS / 1000 + 0.1)
    unattempted = {"unattempted": claims}
    await owlat.run_mutation("transactionalSends:recoverStalled", unattempted, internal=True)
    await asyncio.sleep(0.01)
    again = await owlat.run_mutation(
        "transactionalSends:claim", {**claim, "sendIds": fresh}, internal=True
    )
    assert again.value["claimed"][0]["claimedAt"] > claims[0]["claimedAt"]
    row = await in_query(owlat, lambda ctx: ctx.db.get(fresh[0]))
    assert await renew() == []
    assert await in_query(owlat, lambda ctx: ctx.db.get(fresh[0])) == row


async def test_a_run_that_ended_renews_nothing_and_its_own_journal_is_read(
    owlat: Application, tmp_path: Path, dns: DnsServer
) -> None:
    """A run holds its claims (recovery here leaves them, however late); once it ended
    in an error, nothing renews them, and after the lease this process's recovery reads
    its own journal: the attempted send is uncertain, the other sent again."""
    team = await owner_and_editor(owlat)
    async with smtp_server(Sink()) as port:
        await _smtp_list(owlat, team, port, dns, 0)
    send_ids = await test_journal.enqueued(owlat, team[2], 2)
    own = journal.opened(instance.current().data_dir)
    assert own is not None

    async def run(ctx: Any, args: Any) -> None:
        renewal = leases.Renewal(ctx, internal.transactional_sends.renew, LEASE_MS, own)
        async with renewal:
            claim = {"sendIds": send_ids, "routeProviders": ["smtp"], "leaseMs": LEASE_MS,
                     "journal": own.name}  # fmt: skip
            batch = await renewal.claimed(
                ctx.run_mutation(internal.transactional_sends.claim, claim), "claimed"
            )
            first = batch["claimed"][0]
            own.noter(first["sendId"], first["claimedAt"])("handed")  # handed to a provider
            stalled.set()
            await asyncio.sleep(4 * LEASE_MS / 1000)
            raise RuntimeError("the run ends in an error")

    stalled = asyncio.Event()
    owlat.package.functions.add("adhoc:abandoned", internal_action(run))
    task = asyncio.create_task(owlat.run_action("adhoc:abandoned", {}, internal=True))
    await stalled.wait()
    rows = [await in_query(owlat, lambda ctx, i=i: ctx.db.get(i)) for i in send_ids]
    claims = [
        {"sendId": r["_id"], "claimedAt": r["claimedAt"], "claimedBy": own.name} for r in rows
    ]
    held = [{"sendId": r["_id"], "claimedAt": r["claimedAt"]} for r in rows]
    assert journal.held(tmp_path, claims) == held  # however late a renewal comes
    assert journal.verdicts(tmp_path, claims) == {"unattempted": [], "ended": [], "uncertain": []}
    await asyncio.sleep(2 * LEASE_MS / 1000)
    await owlat.run_action("transactionalSends:recover", {}, internal=True)
    rows = [await in_query(owlat, lambda ctx, i=i: ctx.db.get(i)) for i in send_ids]
    assert [row["status"] for row in rows] == ["sending", "sending"]  # held and renewed
    with pytest.raises(RuntimeError):
        await task
    assert journal.held(tmp_path, claims) == []
    await asyncio.sleep(LEASE_MS / 1000 + 0.1)
    await owlat.run_action("transactionalSends:recover", {}, internal=True)
    rows = [await in_query(owlat, lambda ctx, i=i: ctx.db.get(i)) for i in send_ids]
    assert [(row["status"], row.get("errorCode")) for row in rows] == [
        ("failed", "DELIVERY_UNCERTAIN"),
        ("queued", None),  # never attempted: sent again
    ]
