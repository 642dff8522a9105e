"""Recipient-local send time (lib/campaigns/local_time.py, reference §11.2.8): due times
across DST changes, and a campaign whose sends wait for each recipient's wall clock,
through a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from owlat.app.lib.campaigns.local_time import due_at, first_zone
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.campaign_setup import finished, pending_jobs, progress_until, ready_campaign
from tests.app.conftest import Caller
from tests.app.domains.dns_server import DnsServer
from tests.app.sending.servers import Sink
from tests.app.test_campaigns import _once_each, _sends, _smtp_list, owlat, sink, team

__all__ = ["owlat", "sink", "team"]  # fixtures
SENDER = "news@news-example.com"


def _ms(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp() * 1000


@pytest.mark.parametrize(
    ("start", "zone", "hour", "minute", "due"),
    [
        # New York the day before its spring change (EST, -5) and on it (EDT, -4)
        ("2026-03-07T12:00:00+00:00", "America/New_York", 9, 0, "2026-03-07T14:00:00+00:00"),
        ("2026-03-08T05:00:00+00:00", "America/New_York", 9, 0, "2026-03-08T13:00:00+00:00"),
        # Berlin has not changed yet on 8 March (CET, +1); it does on 29 March (CEST, +2)
        ("2026-03-08T05:00:00+00:00", "Europe/Berlin", 9, 0, "2026-03-08T08:00:00+00:00"),
        ("2026-03-28T23:30:00+00:00", "Europe/Berlin", 9, 0, "2026-03-29T07:00:00+00:00"),
        # already past today: tomorrow, across the change (EST day, EDT due)
        ("2026-03-07T15:00:00+00:00", "America/New_York", 9, 0, "2026-03-08T13:00:00+00:00"),
        # autumn: Berlin back to CET on 25 October, New York still EDT until 1 November
        ("2026-10-25T00:30:00+00:00", "Europe/Berlin", 9, 0, "2026-10-25T08:00:00+00:00"),
        ("2026-10-25T00:30:00+00:00", "America/New_York", 9, 0, "2026-10-25T13:00:00+00:00"),
        # 02:30 does not exist in New York on 8 March: sent when the gap ends (07:30Z)
        ("2026-03-08T05:00:00+00:00", "America/New_York", 2, 30, "2026-03-08T07:30:00+00:00"),
        # 01:30 happens twice on 1 November: the first (EDT)
        ("2026-11-01T04:00:00+00:00", "America/New_York", 1, 30, "2026-11-01T05:30:00+00:00"),
        # a half-hour zone; the start itself when it is exactly HH:MM there
        ("2026-06-01T00:00:00+00:00", "Asia/Kolkata", 9, 0, "2026-06-01T03:30:00+00:00"),
        ("2026-06-01T03:30:00+00:00", "Asia/Kolkata", 9, 0, "2026-06-01T03:30:00+00:00"),
    ],
)
def test_the_due_time_is_the_next_local_wall_clock_time_dst_aware(
    start: str, zone: str, hour: int, minute: int, due: str
) -> None:
    assert due_at(_ms(start), ZoneInfo(zone), hour, minute) == _ms(due)


def test_a_zone_falls_back_to_the_next_known_one_then_utc() -> None:
    assert first_zone(None, "Nowhere/Else", "Asia/Tokyo") == ZoneInfo("Asia/Tokyo")
    assert first_zone("Europe/Paris", "Asia/Tokyo") == ZoneInfo("Europe/Paris")
    assert first_zone("", "../etc/passwd", None) == ZoneInfo("UTC")


async def test_each_recipient_gets_the_campaign_at_the_wall_clock_time_of_their_zone(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[Sink, int], dns: DnsServer
) -> None:
    owner, editor, _ = team
    list_id, contact_ids = await _smtp_list(owlat, team, sink[1], dns, 8)
    zones = ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "Not/AZone"]

    async def set_zones(ctx: Any) -> None:
        for contact_id, zone in zip(contact_ids, zones, strict=False):
            await ctx.db.patch(contact_id, {"timezone": zone})

    await in_mutation(owlat, set_zones)
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    ident = {"campaignId": campaign_id}
    with pytest.raises(ConvexError, match="^Unknown timezone 'Mars/Base': use an IANA name"):
        await editor.mutation("campaigns:update", {**ident, "timezone": "Mars/Base"})
    await editor.mutation("campaigns:update", {**ident, "timezone": "Pacific/Auckland"})
    now = dt.datetime.now(dt.UTC)
    # a minute no zone (offsets in quarter hours) reaches in the next 6 minutes
    hour, minute = (now.hour + 2) % 24, (now.minute + 7) % 60
    local = {**ident, "scheduledAt": 4e12, "useRecipientTimezone": True}
    with pytest.raises(ConvexError, match=r"^useRecipientTimezone needs scheduledHour \(0–23\)"):
        await owner.mutation("campaigns:schedule", {**local, "scheduledHour": 24})
    await owner.mutation(
        "campaigns:schedule", {**local, "scheduledHour": hour, "scheduledMinute": minute}
    )
    await owner.mutation("campaigns:send", ident)  # starts now, each recipient at HH:MM
    await progress_until(editor, campaign_id, lambda p: not p["walking"] and p["enqueued"] == 8)

    async def job(ctx: Any) -> dict[str, Any]:
        found = await (
            ctx.db.query("campaignSendJobs")
            .with_index("by_campaign", lambda q: q.eq("campaignId", campaign_id))
            .first()
        )
        return dict(found)

    started = (await in_query(owlat, job))["startedAt"]
    rows = {row["contactId"]: row for row in await _sends(owlat, campaign_id)}
    for index, contact_id in enumerate(contact_ids):
        zone = zones[index] if index < 3 else "Pacific/Auckland"  # none, or unknown: default
        expected = due_at(started, ZoneInfo(zone), hour, minute)
        assert rows[contact_id]["dueAt"] == expected > started + 5 * 60_000
        assert rows[contact_id]["status"] == "queued"
    wake_times = sorted({row["dueAt"] for row in rows.values()})
    assert (await in_query(owlat, job))["wakeTimes"] == wake_times
    wakes = await pending_jobs(owlat, "campaignSends:wake")
    assert sorted(wake["scheduledTime"] for wake in wakes) == wake_times
    await asyncio.sleep(0.5)
    assert sink[0].received == []  # nobody's time has come
    progress = await editor.query("campaigns:progress", ident)
    assert (progress["status"], progress["pending"]) == ("sending", 8)

    # the clock reaches New York's and Berlin's time: their wake-up sends theirs only
    async def arrive(ctx: Any) -> None:
        for contact_id in contact_ids[:2]:
            await ctx.db.patch(rows[contact_id]["_id"], {"updatedAt": 0.0})

    await in_mutation(owlat, arrive)
    await owlat.run_mutation("campaignSends:wake", ident, internal=True)
    await progress_until(editor, campaign_id, lambda p: p["sent"] == 2)
    assert _once_each(sink[0]) == {rows[c]["email"] for c in contact_ids[:2]}

    async def everyone(ctx: Any) -> None:
        for contact_id in contact_ids[2:]:
            await ctx.db.patch(rows[contact_id]["_id"], {"updatedAt": 0.0})

    await in_mutation(owlat, everyone)
    await owlat.run_mutation("campaignSends:wake", ident, internal=True)
    progress = await finished(editor, campaign_id)
    assert (progress["sent"], progress["pending"]) == (8, 0)
    assert len(_once_each(sink[0])) == 8
