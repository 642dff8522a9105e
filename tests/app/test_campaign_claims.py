"""A campaign worker's claim and record as compare-and-sets (lib/campaigns/delivery.py), on
SQLite and PostgreSQL: a claim decides each send of its batch on its own recipient's rows
(read for the whole batch at once) and its read set holds every row it decided on; the
record of a run whose claim was recovered and claimed again by another run changes and
counts nothing.

No scheduler runs: the tests walk, claim, recover and record through the real internal
functions, as the delivery workers and the recovery cron would."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from owlat.app.lib.sending import journal
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query, query_result
from tests.app.campaign_setup import address
from tests.app.domains.dns_server import DnsServer
from tests.app.sending import test_journal
from tests.app.test_campaigns import _sends

LEASE_MS = test_journal.LEASE_MS
owlat = test_journal.owlat  # the app with that lease, no scheduler (a fixture)


def _claim_args(ident: dict[str, Any], journal: str) -> dict[str, Any]:
    return {**ident, "routeProviders": ["smtp"], "leaseMs": LEASE_MS, "journal": journal}


async def test_a_claim_refuses_each_ineligible_recipient_and_reads_what_it_decided_on(
    owlat: Application, dns: DnsServer
) -> None:
    team, list_id = await test_journal._team(owlat, dns, 8)
    ident = await test_journal.walked(owlat, team, list_id)
    rows = {row["email"]: row for row in await _sends(owlat, ident["campaignId"])}
    await team[0].mutation("blockedEmails:add", {"email": address(3), "reason": "manual"})

    def contact(i: int) -> str:
        return str(rows[address(i)]["contactId"])

    async def change(ctx: Any) -> None:  # after the walk: only the claim can see these
        await ctx.db.patch(contact(1), {"deletedAt": 1.0})
        await ctx.db.patch(contact(4), {"unsubscribedAt": 1.0})
        for i, status in ((6, "pending"), (7, None)):
            (member,) = await ctx.db.lookup(
                "mailingListMembers", "by_list_contact", [(list_id, contact(i))]
            )
            member = member[0]
            if status is None:
                await ctx.db.delete(member["_id"])
            else:
                await ctx.db.patch(member["_id"], {"status": status})

    await in_mutation(owlat, change)
    outcome = await owlat.run_mutation(
        "campaignSends:claim", _claim_args(ident, "run"), internal=True
    )
    claimed = [send["email"] for send in outcome.value["sends"]]
    assert claimed == [address(i) for i in (0, 2, 5)]
    after = {row["email"]: row for row in await _sends(owlat, ident["campaignId"])}
    refused = {i: after[address(i)] for i in (1, 3, 4, 6, 7)}
    assert {row["errorCode"] for row in refused.values()} == {"RECIPIENT_SUPPRESSED"}
    assert refused[1]["errorMessage"] == "The contact was deleted"
    assert refused[3]["errorMessage"].endswith("is on the suppression list (manual)")
    assert refused[4]["errorMessage"].endswith("unsubscribed from all marketing email")
    assert refused[6]["errorMessage"].endswith("has not confirmed the subscription (double opt-in)")
    assert refused[7]["errorMessage"].endswith("left the campaign's list")
    # every claimed recipient's membership and suppression rows are in the claim's read
    # set, as a query for each records them: a change to one conflicts with the claim
    read_set = outcome.read_set
    assert read_set is not None
    organization_id = team[2]
    for i in (0, 2, 5):
        contact_id, email = rows[address(i)]["contactId"], address(i)
        member = (("listId", list_id), ("contactId", contact_id))
        blocked = (("organizationId", organization_id), ("email", email))
        ranges = [
            ("mailingListMembers", "by_list_contact", member),
            ("blockedEmails", "by_org_email", blocked),
        ]
        for table, index, fields in ranges:
            expected = await _range_read(owlat, table, index, fields)
            assert any(
                got.low <= expected.low and expected.high <= got.high
                for got in read_set.intervals(table, index)
            ), (table, email)


async def _range_read(
    owlat: Application, table: str, index: str, fields: tuple[tuple[str, str], ...]
) -> Any:
    """The index range a query of `table` by `index` on `fields` records."""

    def bounds(q: Any) -> Any:
        for name, value in fields:
            q = q.eq(name, value)
        return q

    result = await query_result(
        owlat, lambda ctx: ctx.db.query(table).with_index(index, bounds).collect()
    )
    assert result.read_set is not None
    (interval,) = result.read_set.intervals(table, index)
    return interval


async def test_the_record_of_a_run_whose_claim_was_recovered_and_taken_again_changes_nothing(
    owlat: Application, tmp_path: Path, dns: DnsServer
) -> None:
    team, list_id = await test_journal._team(owlat, dns, 3)
    ident = await test_journal.walked(owlat, team, list_id)
    first = await owlat.run_mutation(
        "campaignSends:claim", _claim_args(ident, "dead"), internal=True
    )
    assert len(first.value["sends"]) == 3
    # its worker dies before any attempt (its journal is empty): recovery puts them back
    # and another run claims them
    folder = tmp_path / journal.FOLDER
    folder.mkdir(exist_ok=True)
    test_journal._journal(folder, "dead", None, [])
    await asyncio.sleep(LEASE_MS / 1000 + 0.1)
    await owlat.run_action("campaignSends:recover", {"idleMs": 0}, internal=True)
    assert {row["status"] for row in await _sends(owlat, ident["campaignId"])} == {"queued"}
    campaign = await in_query(owlat, lambda ctx: ctx.db.get(ident["campaignId"]))
    ident["generation"] = campaign["workerGeneration"]  # recovery started new workers
    second = await owlat.run_mutation(
        "campaignSends:claim", _claim_args(ident, "alive"), internal=True
    )
    assert len(second.value["sends"]) == 3

    async def record(batch: dict[str, Any], journal: str) -> None:
        outcomes = [
            {"sendId": send["sendId"], "claimedAt": send["claimedAt"], "status": "sent",
             "provider": "smtp", "providerMessageId": f"{journal}-{send['sendId']}"}
            for send in batch["sends"]
        ]  # fmt: skip
        args = {"campaignId": ident["campaignId"], "outcomes": outcomes, "attempts": []}
        await owlat.run_mutation(
            "campaignSends:record", {**args, "journal": journal}, internal=True
        )

    await record(first.value, "dead")  # the recovered run's outcomes, late
    rows = await _sends(owlat, ident["campaignId"])
    assert {(row["status"], row["claimedBy"]) for row in rows} == {("sending", "alive")}
    progress = await team[0].query("campaigns:progress", {"campaignId": ident["campaignId"]})
    assert (progress["sent"], progress["failed"]) == (0, 0)
    # the same claim times under another run's journal change nothing either
    await record(second.value, "dead")
    assert {row["status"] for row in await _sends(owlat, ident["campaignId"])} == {"sending"}
    await record(second.value, "alive")
    rows = await _sends(owlat, ident["campaignId"])
    assert {row["providerMessageId"][:6] for row in rows} == {"alive-"}
    progress = await team[0].query("campaigns:progress", {"campaignId": ident["campaignId"]})
    assert (progress["sent"], progress["status"]) == (3, "sent")
