"""A/B tests of campaigns (lib/campaigns/ab_tests.py, reference §11.3): FNV-1a buckets,
the test phase reaching the test share only, manual and automatic winners, the remainder
to everyone else exactly once, pause and cancel during the test; sent through a real SMTP
server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from owlat.app.lib.campaigns.ab_tests import bucket, fnv1a, variant_of, winner
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from tests.app.campaign_setup import finished, pending_jobs, progress_until, ready_campaign
from tests.app.conftest import Caller
from tests.app.domains.dns_server import DnsServer
from tests.app.sending.servers import Sink
from tests.app.test_campaigns import (
    SENDER,
    _once_each,
    _received,
    _sends,
    _smtp_list,
    owlat,
    sink,
    team,
)

__all__ = ["owlat", "sink", "team"]  # fixtures


def test_fnv1a_matches_the_reference_values_and_buckets_are_deterministic() -> None:
    assert [fnv1a(text) for text in ("", "hello", "abc", "test", "a", "foobar")] == [
        0x811C9DC5, 1335831723, 440920331, 2949673445, 0xE40C292C, 0xBF9CF968
    ]  # fmt: skip
    assert bucket("c1", "k2") == fnv1a("c1:k2") / 2**32 == bucket("c1", "k2")
    places = [bucket("campaign", f"contact{i}") for i in range(4000)]
    assert all(0 <= place < 1 for place in places)
    assert 0.45 < sum(place < 0.5 for place in places) / 4000 < 0.55  # spread evenly
    campaign = {"_id": "campaign", "abWinner": "B"}
    test = {"variantMode": "ab_test", "testFraction": 0.4}
    for i, place in enumerate(places[:200]):
        expected = "A" if place < 0.2 else "B" if place < 0.4 else ""
        assert variant_of(test, campaign, f"contact{i}") == expected
        assert variant_of({"variantMode": "ab_winner"}, campaign, f"contact{i}") == "B"
    assert variant_of({}, campaign, "contact0") is None
    opens = {"winnerCriteria": "open_rate"}
    assert winner(opens, None) == "A"  # no data
    assert winner(opens, {"A": {"sent": 10, "opened": 2}, "B": {"sent": 5, "opened": 1}}) == "A"
    assert winner(opens, {"A": {"sent": 10, "opened": 2}, "B": {"sent": 5, "opened": 2}}) == "B"
    clicks = {"winnerCriteria": "click_rate"}
    assert winner(clicks, {"A": {"sent": 10, "opened": 9}, "B": {"sent": 5, "clicked": 1}}) == "B"


async def _in_test_phase(caller: Caller, campaign_id: str) -> dict[str, Any]:
    """The progress once the test cohort was walked and every test send has its outcome."""
    return await progress_until(
        caller,
        campaign_id,
        lambda p: not p["walking"] and p["enqueued"] > 0 and p["pending"] == 0,
    )


def _cohort(campaign_id: str, rows: list[dict[str, Any]], share: float) -> dict[str, str]:
    """{email: variant} of the contacts of `rows` whose bucket puts them in the test."""
    cohort = {}
    for row in rows:
        place = bucket(campaign_id, row["contactId"])
        if place < 2 * share:
            cohort[row["email"]] = "A" if place < share else "B"
    return cohort


async def test_the_test_share_gets_its_variants_then_the_manual_winner_reaches_the_rest_once(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    list_id, _ = await _smtp_list(owlat, team, sink[1], dns, 200)
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    ident = {"campaignId": campaign_id}
    test = {**ident, "testType": "subject", "splitPercentage": 25, "winnerCriteria": "manual"}
    for wrong, message in (
        ({"splitPercentage": 60}, "^splitPercentage must be a whole number from 10 to 50$"),
        ({}, "^A subject test needs variantBSubject$"),
        ({"testType": "content"}, "^A content test needs variantBTemplateId: a template$"),
        ({"testType": "content", "variantBTemplateId": "nope"},
         "^A content test needs variantBTemplateId: a template$"),
        ({"variantBSubject": "B", "winnerCriteria": "open_rate"},
         "^An automatic winner needs testDuration: more than 0 and at most 720 hours$"),
    ):  # fmt: skip
        with pytest.raises(ConvexError, match=message):
            await editor.mutation("campaigns:enableAbTest", {**test, **wrong})
    await editor.mutation(
        "campaigns:enableAbTest", {**test, "variantBSubject": "Other news for {{firstName}}"}
    )
    await owner.mutation("campaigns:send", ident)
    progress = await _in_test_phase(editor, campaign_id)
    await asyncio.sleep(0.3)  # the campaign waits for its winner
    rows = await _sends(owlat, campaign_id)
    progress = await editor.query("campaigns:progress", ident)
    assert progress["status"] == "sending" and progress["abTest"]["status"] == "testing"
    members = [{"email": row["email"], "contactId": row["contactId"]} for row in rows]
    cohort = _cohort(campaign_id, members, 0.25)
    assert {row["email"]: row["abVariant"] for row in rows} == cohort
    assert 60 < len(cohort) < 140 and set(cohort.values()) == {"A", "B"}
    assert _once_each(sink[0]) == set(cohort)
    for recipient, mail in _received(sink[0]):
        index = int(recipient[6:13])
        prefix = "News" if cohort[recipient] == "A" else "Other news"
        assert mail["Subject"] == f"{prefix} for R{index}"
    variants = progress["abTest"]["variants"]
    counts = {name: list(cohort.values()).count(name) for name in "AB"}
    assert (variants["A"]["sent"], variants["B"]["sent"]) == (counts["A"], counts["B"])
    assert progress["abTest"]["heldBack"] == 200 - len(cohort)
    assert variants["A"]["openRate"] == 0.0 and progress["abTest"]["winner"] is None

    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("campaigns:declareAbTestWinner", {**ident, "winner": "B"})
    await owner.mutation("campaigns:declareAbTestWinner", {**ident, "winner": "B"})
    progress = await finished(editor, campaign_id)
    assert (progress["sent"], progress["pending"], progress["enqueued"]) == (200, 0, 200)
    assert progress["abTest"]["status"] == "winner_selected" and progress["abTest"]["heldBack"] == 0
    assert progress["abTest"]["variants"]["B"]["sent"] == 200 - counts["A"]
    assert len(_once_each(sink[0])) == 200
    for recipient, mail in _received(sink[0]):
        if recipient not in cohort:
            assert mail["Subject"].startswith("Other news for R")
    with pytest.raises(ConvexError, match="^The A/B test is winner_selected, not testing$"):
        await owner.mutation("campaigns:declareAbTestWinner", {**ident, "winner": "A"})


async def test_the_automatic_winner_has_the_better_open_rate_and_waits_for_a_resume(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    list_id, _ = await _smtp_list(owlat, team, sink[1], dns, 200)
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    ident = {"campaignId": campaign_id}
    other = await owner.mutation(
        "emailTemplates:create",
        {"name": "Hola", "type": "marketing", "subject": "Hola {{firstName}}",
         "content": '[{"id":"t","type":"text","content":{"html":"<p>Hola</p>"}}]'},
    )  # fmt: skip
    await editor.mutation(
        "campaigns:enableAbTest",
        {**ident, "testType": "content", "variantBTemplateId": other, "splitPercentage": 10,
         "winnerCriteria": "open_rate", "testDuration": 4},
    )  # fmt: skip
    with pytest.raises(ConvexError, match='^Publish the template "Hola" \\(variant B\\) before'):
        await owner.mutation("campaigns:send", ident)
    await owner.mutation("emailTemplates:publish", {"templateId": other})
    await owner.mutation("campaigns:send", ident)
    started = (await owner.query("campaigns:get", ident))["sentAt"]
    [job] = await pending_jobs(owlat, "campaignSends:declareWinner")
    assert job["args"] == [ident] and job["scheduledTime"] == pytest.approx(
        started + 4 * 3_600_000, abs=1000
    )
    await _in_test_phase(editor, campaign_id)
    rows = await _sends(owlat, campaign_id)
    tested = {row["email"]: row["abVariant"] for row in rows}
    for recipient, mail in _received(sink[0]):
        html = mail.get_body(("html",)).get_content()
        assert ("Hola" in html) == (tested[recipient] == "B")
    opened = next(row for row in rows if row["abVariant"] == "B")
    await owlat.run_mutation(
        "tracking:record", {"events": [{"sendId": opened["_id"], "kind": "opened"}]}, internal=True
    )
    await owner.mutation("campaigns:pause", ident)
    result = await owlat.run_mutation("campaignSends:declareWinner", ident, internal=True)
    assert result.value == "B"
    await asyncio.sleep(0.3)
    assert len(sink[0].received) == len(rows)  # paused: the remainder waits
    progress = await editor.query("campaigns:progress", ident)
    assert progress["abTest"]["variants"]["B"]["opened"] == 1
    assert progress["abTest"]["winner"] == "B" and progress["status"] == "paused"
    await owner.mutation("campaigns:resume", ident)
    progress = await finished(editor, campaign_id)
    assert (progress["sent"], progress["enqueued"]) == (200, 200)
    assert len(_once_each(sink[0])) == 200
    again = await owlat.run_mutation("campaignSends:declareWinner", ident, internal=True)
    assert again.value is None


async def test_a_cancel_during_the_test_phase_ends_the_test_without_a_remainder(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    list_id, _ = await _smtp_list(owlat, team, sink[1], dns, 200)
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    ident = {"campaignId": campaign_id}
    await editor.mutation(
        "campaigns:enableAbTest",
        {**ident, "testType": "subject", "variantBSubject": "B", "splitPercentage": 50,
         "winnerCriteria": "click_rate", "testDuration": 0.5},
    )  # fmt: skip
    await owner.mutation("campaigns:send", ident)
    await owner.mutation("campaigns:cancel", ident)
    await progress_until(owner, campaign_id, lambda p: p["pending"] == 0)
    declared = await owlat.run_mutation("campaignSends:declareWinner", ident, internal=True)
    assert declared.value is None
    with pytest.raises(ConvexError, match="^The campaign is cancelled$"):
        await owner.mutation("campaigns:declareAbTestWinner", {**ident, "winner": "A"})
    count = len(sink[0].received)
    await asyncio.sleep(0.3)
    assert len(sink[0].received) == count
    campaign = await owner.query("campaigns:get", ident)
    assert campaign["status"] == "cancelled" and "abWinner" not in campaign
    with pytest.raises(ConvexError, match="^Only a draft's A/B test can be removed; this camp"):
        await editor.mutation("campaigns:disableAbTest", ident)
    copy_id = await editor.mutation("campaigns:duplicate", ident)
    await editor.mutation("campaigns:disableAbTest", {"campaignId": copy_id})
    assert (await editor.query("campaigns:progress", {"campaignId": copy_id}))["abTest"] is None
