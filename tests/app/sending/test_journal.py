"""The attempt journal (lib/sending/journal.py) and recovery of sends left `sending` by
a crash, on SQLite and PostgreSQL: a send whose claim's journal is known and shows no
attempt, or an SMTP transaction that never ended its DATA, goes back to `queued`; one
whose SMTP transaction's end of DATA was written is `sent`, DELIVERY_UNCONFIRMED, and
counted as sent; one whose journal's writer is alive here is left alone (it may still be
delivering it); every other one (handed to a provider that cannot tell more; a journal
of another boot, torn, or on another node: not here) is failed DELIVERY_UNCERTAIN;
journals nobody needs any more are deleted. Campaign sends and transactional sends.

No scheduler runs: the tests claim sends through the real internal functions, as a
delivery worker would, then write the journals the crashed process would have left (its
lock gone with it) and run the recovery actions."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib.sending import journal, sends
from owlat.app.lib.sending.composition import SendKind
from owlat.app.lib.sending.sends import SendRequest, enqueue_send
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


async def _team(owlat: Application, dns: DnsServer, count: int) -> tuple[Any, str]:
    """The team, SMTP to a sink (gone: nothing is sent here), the verified sending domain
    of `SENDER` and a list of `count` members."""
    team = await owner_and_editor(owlat)
    async with smtp_server(Sink()) as port:
        list_id, _ = await _smtp_list(owlat, team, port, dns, count)
    return team, list_id


async def walked(owlat: Application, team: Any, list_id: str) -> dict[str, Any]:
    """A campaign to the list, sent and walked (no scheduler runs): its id and its
    workers' generation (what `campaignSends:deliver` and `claim` take)."""
    campaign_id = await ready_campaign(team[0], list_id, SENDER, team[1])
    await team[0].mutation("campaigns:send", {"campaignId": campaign_id})
    ident = {"campaignId": campaign_id}
    for hop in range(10):
        await owlat.run_mutation("campaignSends:walk", {**ident, "hop": hop}, internal=True)
    campaign = await in_query(owlat, lambda ctx: ctx.db.get(campaign_id))
    return {**ident, "generation": campaign["workerGeneration"]}


async def _claimed(owlat: Application, dns: DnsServer, count: int) -> tuple[Any, str]:
    """The team and a campaign to `count` members walked and its sends claimed under
    journal "dead"."""
    team, list_id = await _team(owlat, dns, count)
    ident = await walked(owlat, team, list_id)
    batch = await owlat.run_mutation(
        "campaignSends:claim",
        {**ident, "routeProviders": ["smtp"], "leaseMs": LEASE_MS, "journal": "dead"},
        internal=True,
    )
    assert len(batch.value["sends"]) == count
    return team, ident["campaignId"]


def _journal(folder: Path, name: str, boot: str | None, tokens: list[str], tail: str = "") -> None:
    boot = boot or journal.boot_id()
    lines = [f"{journal.MAGIC} boot={boot} pid=1", *tokens]
    (folder / name).write_text("".join(line + "\n" for line in lines) + tail)


async def test_campaign_recovery_requeues_only_sends_a_known_journal_shows_unattempted(
    owlat: Application, tmp_path: Path, dns: DnsServer
) -> None:
    team, campaign_id = await _claimed(owlat, dns, 9)
    rows = {row["email"]: row for row in await _sends(owlat, campaign_id)}
    by = {
        address(0): "dead",  # attempted
        address(1): "dead",  # not attempted: back to queued
        address(2): "otherboot",  # a journal of before a reboot
        address(3): "torn",  # its last line cut
        address(4): "alive",  # its writer still holds it
        address(5): "elsewhere",  # claimed on another node: no journal here
        address(6): "dead",  # not attempted either
        address(7): "dead",  # its SMTP transaction started, its DATA never ended
        address(8): "dead",  # its SMTP transaction's DATA ended: the relay has it
    }

    async def name_claims(ctx: Any) -> None:
        for email, name in by.items():
            await ctx.db.patch(rows[email]["_id"], {"claimedBy": name})

    await in_mutation(owlat, name_claims)

    def tok(i: int) -> str:
        return journal.token(rows[address(i)]["_id"], rows[address(i)]["claimedAt"])

    folder = tmp_path / journal.FOLDER
    folder.mkdir(exist_ok=True)
    ended = [journal.line(tok(8), "mail"), journal.line(tok(8), "end")]
    _journal(folder, "dead", None, [tok(0), "some-other-send 1", f"{tok(7)} mail", *ended])
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
            address(4): "sending",  # its writer may still deliver it: left for later
            address(5): "failed",
            address(6): "queued",
            address(7): "queued",
            address(8): "sent",
        }
        failed = [row for row in after.values() if row["status"] == "failed"]
        assert {row["errorCode"] for row in failed} == {"DELIVERY_UNCERTAIN"}
        assert after[address(1)]["attempts"] == 0  # its claim undone: never attempted
        assert after[address(7)]["attempts"] == 0
        unconfirmed = after[address(8)]
        assert (unconfirmed["errorCode"], unconfirmed["providerType"]) == (
            "DELIVERY_UNCONFIRMED",
            "smtp",
        )
        assert unconfirmed["providerMessageId"] == unconfirmed["messageId"]
        progress = await team[0].query("campaigns:progress", {"campaignId": campaign_id})
        assert (progress["sent"], progress["failed"]) == (1, 4)
        stalled = await owlat.run_query("campaignSends:stalled", {}, internal=True)
        assert [row["claimedBy"] for row in stalled.value] == ["alive"]
        # the journals: kept while a stalled send names them, or alive
        names = sorted(path.name for path in folder.iterdir())
        assert names == ["alive", "dead", "otherboot", "torn"]
        await owlat.run_action("deliveryJournals:sweep", {}, internal=True)
        assert sorted(path.name for path in folder.iterdir()) == names
    finally:
        os.close(alive)
    # its writer died without writing the send's claim: it never left, back to queued
    await owlat.run_action("campaignSends:recover", {"idleMs": 0}, internal=True)
    after = {row["email"]: row for row in await _sends(owlat, campaign_id)}
    assert (after[address(4)]["status"], after[address(4)]["attempts"]) == ("queued", 0)
    assert (await owlat.run_query("campaignSends:stalled", {}, internal=True)).value == []
    # a dead journal is deleted once seen dead, and named by none, for a lease
    await owlat.run_action("deliveryJournals:sweep", {}, internal=True)
    await asyncio.sleep(LEASE_MS / 1000 + 0.1)
    swept = await owlat.run_action("deliveryJournals:sweep", {}, internal=True)
    assert sorted(swept.value) == names
    assert list(folder.iterdir()) == []


async def test_a_cancelled_campaigns_stalled_sends_never_attempted_end_cancelled(
    owlat: Application, tmp_path: Path, dns: DnsServer
) -> None:
    team, campaign_id = await _claimed(owlat, dns, 5)
    rows = {row["email"]: row for row in await _sends(owlat, campaign_id)}

    def tok(i: int) -> str:
        return journal.token(rows[address(i)]["_id"], rows[address(i)]["claimedAt"])

    await in_mutation(
        owlat, lambda ctx: ctx.db.patch(rows[address(2)]["_id"], {"claimedBy": "elsewhere"})
    )
    folder = tmp_path / journal.FOLDER
    folder.mkdir(exist_ok=True)
    _journal(folder, "dead", None, [tok(0), f"{tok(3)} mail", f"{tok(4)} mail", f"{tok(4)} end"])
    ident = {"campaignId": campaign_id}
    await team[0].mutation("campaigns:cancel", ident)
    await asyncio.sleep(LEASE_MS / 1000 + 0.1)
    # the chain of `cancel_queued` (no scheduler runs here: each step is run by hand)
    await owlat.run_mutation("campaignSends:cancelQueued", ident, internal=True)
    assert {row["status"] for row in await _sends(owlat, campaign_id)} == {"sending"}
    await owlat.run_action("campaignSends:readCancelledJournals", ident, internal=True)
    after = {row["email"]: row for row in await _sends(owlat, campaign_id)}
    assert {email: (row["status"], row["errorCode"]) for email, row in after.items()} == {
        address(0): ("failed", "DELIVERY_UNCERTAIN"),  # handed to the relay
        address(1): ("failed", "CANCELLED"),  # its journal shows it never left
        address(2): ("failed", "DELIVERY_UNCERTAIN"),  # claimed on another node
        address(3): ("failed", "CANCELLED"),  # its DATA never ended
        address(4): ("sent", "DELIVERY_UNCONFIRMED"),  # its DATA ended: the relay has it
    }
    progress = await team[0].query("campaigns:progress", ident)
    assert (progress["sent"], progress["failed"], progress["pending"]) == (1, 4, 0)


async def test_transactional_recovery_sends_again_only_what_was_never_attempted(
    owlat: Application, tmp_path: Path, dns: DnsServer
) -> None:
    team, _ = await _team(owlat, dns, 0)

    send_ids = await enqueued(owlat, team[2], 5)
    claimed = await owlat.run_mutation(
        "transactionalSends:claim",
        {"sendIds": send_ids, "routeProviders": ["smtp"], "leaseMs": LEASE_MS,
         "journal": "dead"},
        internal=True,
    )  # fmt: skip
    tokens = [journal.token(c["sendId"], c["claimedAt"]) for c in claimed.value["claimed"]]
    assert len(tokens) == 5
    await in_mutation(owlat, lambda ctx: ctx.db.patch(send_ids[2], {"claimedBy": "elsewhere"}))
    folder = tmp_path / journal.FOLDER
    folder.mkdir(exist_ok=True)
    ended = [f"{tokens[4]} mail", f"{tokens[4]} end"]
    _journal(folder, "dead", None, [tokens[0], f"{tokens[3]} mail", *ended])
    await asyncio.sleep(LEASE_MS / 1000 + 0.1)
    await owlat.run_action("transactionalSends:recover", {}, internal=True)
    rows = [await in_query(owlat, lambda ctx, i=i: ctx.db.get(i)) for i in send_ids]
    assert [(row["status"], row.get("errorCode")) for row in rows] == [
        ("failed", "DELIVERY_UNCERTAIN"),  # handed to a provider that cannot tell more
        ("queued", None),  # never attempted: sent again (its delivery is scheduled)
        ("failed", "DELIVERY_UNCERTAIN"),  # claimed on another node
        ("queued", None),  # its SMTP transaction never ended its DATA: sent again
        ("sent", "DELIVERY_UNCONFIRMED"),  # its DATA ended: the relay has it
    ]
    assert [row["attempts"] for row in rows[1:4:2]] == [0, 0]
    assert (rows[4]["providerType"], rows[4]["providerMessageId"]) == ("smtp", rows[4]["messageId"])


async def test_a_stalled_resend_send_is_sent_again_with_its_key_only_within_its_window(
    owlat: Application, dns: DnsServer
) -> None:
    """Resend dedupes a repeated Idempotency-Key for 24 hours: a send left `sending` through
    Resend is sent again (same key) when it was queued within 23 hours, else failed
    DELIVERY_UNCERTAIN (Resend would take the key as new)."""
    team, _ = await _team(owlat, dns, 0)
    send_ids = await enqueued(owlat, team[2], 2)
    claim = {"sendIds": send_ids, "routeProviders": ["smtp"], "leaseMs": LEASE_MS}
    await owlat.run_mutation("transactionalSends:claim", claim, internal=True)

    async def through_resend(ctx: Any) -> None:
        for send_id in send_ids:
            await ctx.db.patch(send_id, {"routeProviders": ["resend"]})
        old = (await ctx.db.get(send_ids[1]))["queuedAt"] - sends.KEY_WINDOWS_MS["resend"]
        await ctx.db.patch(send_ids[1], {"queuedAt": old})

    await in_mutation(owlat, through_resend)
    await asyncio.sleep(LEASE_MS / 1000 + 0.1)
    await owlat.run_mutation("transactionalSends:recoverStalled", {}, internal=True)
    rows = [await in_query(owlat, lambda ctx, i=i: ctx.db.get(i)) for i in send_ids]
    assert [(row["status"], row.get("errorCode")) for row in rows] == [
        ("sending", None),  # its delivery is scheduled again, with the same key
        ("failed", "DELIVERY_UNCERTAIN"),
    ]


async def enqueued(owlat: Application, organization_id: str, count: int) -> list[str]:
    """`count` transactional sends of the organization, queued."""

    async def enqueue(ctx: Any) -> list[str]:
        requests = [
            SendRequest(
                organization_id, SendKind.TRANSACTIONAL, address(i), "Hi", "Hi", from_email=SENDER
            )
            for i in range(count)
        ]
        return [await enqueue_send(ctx, request) for request in requests]

    return list(await in_mutation(owlat, enqueue))


def test_a_claims_verdict_is_read_from_its_stages() -> None:
    """`handed` (a provider that cannot tell more) wins: uncertain; else `end`: ended;
    else (nothing, or `mail` only): unattempted."""
    claim = journal.token("send", 1700000000000)
    stages = {
        (): "unattempted",
        ("mail",): "unattempted",
        ("mail", "end"): "ended",
        ("mail", "end", "mail"): "ended",  # a retry on a new connection after the end
        ("handed",): "uncertain",
        ("mail", "handed"): "uncertain",  # a failover to SES after SMTP
        ("mail", "end", "handed"): "uncertain",
    }
    for written, expected in stages.items():
        lines = frozenset(journal.line(claim, stage) for stage in written)  # type: ignore[arg-type]
        assert journal.verdict(lines | {"other 1 end"}, claim) == expected, written


SHORT_WRITE = """
import resource, signal, sys
from pathlib import Path
from owlat.app.lib.sending import journal, sends
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
opened = journal.Journal(Path(sys.argv[1]), journal.boot_id())
limit = opened.path.stat().st_size + 25
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
written = refused = 0
for i in range(4):
    try:
        opened.note(f"send{i} 1700000000000")
        written += 1
    except OSError:
        refused += 1
print(opened.name, written, refused)
"""


def test_a_journal_written_by_a_process_that_ended_is_read_and_a_torn_one_is_unknown(
    tmp_path: Path,
) -> None:
    """A real process writes its journal and exits (its lock goes with it): the lines it
    wrote are read back. Its disk full in the middle of a line (a file size limit): that
    note and every later one raise, and the journal stays torn: unknown."""
    folder = tmp_path / journal.FOLDER
    whole = "from pathlib import Path; import sys; from owlat.app.lib.sending import journal\n"
    whole += "j = journal.Journal(Path(sys.argv[1]), journal.boot_id()); j.note('a 1')\n"
    whole += "print(j.name); assert journal.entries(j.path) is None  # alive: unknown"
    done = subprocess.run([sys.executable, "-c", whole, str(folder)], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert journal.entries(folder / done.stdout.decode().strip()) == {"a 1"}
    done = subprocess.run([sys.executable, "-c", SHORT_WRITE, str(folder)], capture_output=True)
    assert done.returncode == 0, done.stderr
    name, written, refused = done.stdout.decode().split()
    assert (written, refused) == ("1", "3")
    assert journal.entries(folder / name) is None
