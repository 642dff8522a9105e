"""Campaign delivery under a relay that defers (lib/campaigns/throttle.py): an outage of
451s, a 421 greeting, a connection dropped in DATA, the per-domain token bucket, and a
cancelled campaign's sends left `sending`; through a real SMTP server (aiosmtpd), on
SQLite and PostgreSQL.

The issue's outage lasts 30 s; here `OUTAGE` seconds (the back-off doubles from 1 s, so
a few seconds exercise the same pause, retry and resume without a slow test)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from owlat.app.lib.campaigns.throttle import Rates, Throttle, parse_rates
from owlat.runtime.application import Application
from owlat.runtime.testing import in_query
from tests.app.campaign_setup import address, finished, ready_campaign
from tests.app.conftest import Caller, owner_and_editor
from tests.app.domains.dns_server import DnsServer
from tests.app.mail_setup import configure
from tests.app.sending.servers import Sink, smtp_server
from tests.app.test_campaigns import SENDER, _once_each, _sends, _smtp_list

OUTAGE = 2.5  # seconds of 451 answers (the 30 s, shortened: module docstring)


class OutageSink(Sink):
    """A sink that answers 451 to DATA from its first message for `outage` seconds, and
    notes when each message arrived."""

    outage: float = 0.0
    started: float | None = None
    refused: int = 0
    times: list[float]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if now < self.started + self.outage:
            self.refused += 1
            return "451 4.3.0 Temporary local problem, please try later"
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            self.times.append(now)
        return reply


@pytest.fixture
async def owlat(owlat_on_both_engines: Application, tmp_path: Path, dns: DnsServer) -> Application:
    configure(tmp_path, dns)
    return owlat_on_both_engines


@pytest.fixture
async def team(owlat: Application) -> tuple[Caller, Caller, str]:
    return await owner_and_editor(owlat)


@pytest.fixture
async def sink() -> AsyncIterator[tuple[OutageSink, int]]:
    served = OutageSink()
    served.times = []
    async with smtp_server(served) as port:
        yield served, port


async def _campaign(
    owlat: Application, team: tuple[Caller, Caller, str], port: int, dns: DnsServer, count: int
) -> str:
    owner, editor, _ = team
    list_id, _ = await _smtp_list(owlat, team, port, dns, count)
    campaign_id = await ready_campaign(owner, list_id, SENDER, editor)
    await owner.mutation("campaigns:send", {"campaignId": campaign_id})
    return campaign_id


def _exactly_once(sink: Sink, count: int) -> None:
    """Each recipient once (by recipient and Message-ID), none missing."""
    assert _once_each(sink) == {address(i) for i in range(count)}


async def test_a_relay_outage_of_451s_slows_and_resumes_without_loss_or_double(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[OutageSink, int],
    dns: DnsServer,
) -> None:  # fmt: skip
    sink[0].outage = OUTAGE
    campaign_id = await _campaign(owlat, team, sink[1], dns, 400)
    progress = await finished(team[0], campaign_id)
    assert sink[0].refused > 0  # the outage happened
    assert (progress["sent"], progress["failed"], progress["pending"]) == (400, 0, 0)
    _exactly_once(sink[0], 400)
    assert progress["sent"] == len(sink[0].received)
    rows = await _sends(owlat, campaign_id)
    deferred = [row for row in rows if row.get("deferrals")]
    assert deferred and all(row["status"] == "sent" for row in rows)
    assert all(row["attempts"] == 1 for row in rows)  # a deferral undoes its claim
    # it backed off: not one retry per message per second of the outage
    assert sink[0].refused < 400 * OUTAGE
    # and its workers slept while the deferred sends waited (their due time is in seconds:
    # read as milliseconds, each worker ran again about every millisecond of the outage)
    runs = await _delivery_runs(owlat)
    assert runs < 100


async def _delivery_runs(owlat: Application) -> int:
    """How many times a campaign delivery worker (`campaign_sends.deliver`) was scheduled."""

    async def count(ctx: Any) -> int:
        jobs = await ctx.db.system.query("_scheduled_functions").collect()
        return sum(1 for job in jobs if job["name"].endswith(":deliver"))

    return await in_query(owlat, count)


async def test_a_421_greeting_and_a_connection_dropped_in_data_are_sent_once_later(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[OutageSink, int],
    dns: DnsServer,
) -> None:  # fmt: skip
    sink[0].refuse_connections = 2
    sink[0].faults = {address(3): ["DROP"], address(7): ["DROP"]}
    campaign_id = await _campaign(owlat, team, sink[1], dns, 30)
    progress = await finished(team[0], campaign_id)
    assert (progress["sent"], progress["failed"]) == (30, 0)
    _exactly_once(sink[0], 30)
    assert sink[0].refuse_connections == 0 and not any(sink[0].faults.values())
    rows = {row["email"]: row for row in await _sends(owlat, campaign_id)}
    assert rows[address(3)]["deferrals"] >= 1 and rows[address(7)]["deferrals"] >= 1


@pytest.mark.parametrize("rate", [10.0])
async def test_the_per_domain_token_bucket_bounds_the_rate(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[OutageSink, int],
    dns: DnsServer, tmp_path: Path, rate: float,
) -> None:  # fmt: skip
    configure(tmp_path, dns, delivery_rates=Rates(domains={"example.org": rate}))
    campaign_id = await _campaign(owlat, team, sink[1], dns, 40)
    progress = await finished(team[0], campaign_id)
    assert progress["sent"] == 40
    _exactly_once(sink[0], 40)
    times = sorted(sink[0].times)
    # a burst of `rate`, then `rate` a second: 40 take at least 3 s; generous slack
    assert times[-1] - times[0] >= (40 - 2 * rate) / rate
    per_second = Counter(int(t - times[0]) for t in times)
    assert max(per_second.values()) <= 2 * rate + 2


async def test_a_cancelled_campaigns_sends_still_delivered_past_the_lease_end_as_sent(
    owlat: Application, team: tuple[Caller, Caller, str], sink: tuple[OutageSink, int],
    dns: DnsServer, tmp_path: Path,
) -> None:  # fmt: skip
    """The relay answers 4 sends 8 leases late: their worker renews their lease meanwhile
    (`leases.py`), so the cancel's chain waits for them instead of failing them
    DELIVERY_UNCERTAIN, and they end `sent`, as the relay took them."""
    configure(tmp_path, dns, send_lease_ms=500.0)
    sink[0].stall = 4.0
    sink[0].faults = {address(i): ["STALL"] for i in range(4)}  # the 4 connections hang
    campaign_id = await _campaign(owlat, team, sink[1], dns, 300)
    ident = {"campaignId": campaign_id}

    def stalled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [row for row in rows if row["email"] in {address(i) for i in range(4)}]

    async with asyncio.timeout(30):  # the 4 stalled sends are claimed and hang
        while True:
            rows = stalled(await _sends(owlat, campaign_id))
            if len(rows) == 4 and all(row["status"] == "sending" for row in rows):
                break
            await asyncio.sleep(0.02)
    await team[0].mutation("campaigns:cancel", ident)
    async with asyncio.timeout(30):  # the chain of `cancel_queued` ends every send
        while True:
            rows = await _sends(owlat, campaign_id)
            if not [row for row in rows if row["status"] in ("queued", "sending")]:
                break
            await asyncio.sleep(0.05)
    assert [row["status"] for row in stalled(rows)] == ["sent"] * 4
    assert len(rows) == 300 and {row["status"] for row in rows} <= {"sent", "failed"}
    assert "DELIVERY_UNCERTAIN" not in {row.get("errorCode") for row in rows}
    progress = await team[0].query("campaigns:progress", ident)
    assert progress["status"] == "cancelled"
    assert progress["sent"] + progress["failed"] == 300


def test_the_throttle_waits_holds_backs_off_and_resumes() -> None:
    """Buckets per provider and domain (burst of one second), a pause that doubles per
    deferral and ends with a success, on a fake clock."""
    now = [100.0]
    gate = Throttle(Rates(providers={"smtp": 4.0}, domains={"gmail.com": 2.0}), lambda: now[0])
    waits = [gate.admit("o", "smtp", "gmail.com") for _ in range(6)]
    assert [w for w, _ in waits] == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert all(admitted for _, admitted in waits)
    assert gate.admit("o", "smtp", "gmail.com") == (2.5, False)  # beyond MAX_HOLD: later
    assert gate.admit("o", "smtp", "example.org") == (0.75, True)  # the provider: 7th of 4/s
    assert gate.admit("other", "smtp", "gmail.com") == (0.0, True)  # per organization
    now[0] += 10
    assert gate.deferred("o", "gmail.com") == 1.0
    assert gate.admit("o", "smtp", "gmail.com") == (1.0, False)
    assert gate.admit("o", "smtp", "yahoo.com")[1]  # another domain goes on
    now[0] += 1
    assert gate.deferred("o", "gmail.com") == 2.0  # doubled
    now[0] += 2
    assert gate.deferred("o", "gmail.com", retry_after=30) == 30.0
    gate.succeeded("o", "smtp", "gmail.com")
    now[0] += 1
    assert gate.deferred("o", "gmail.com") == 1.0  # resumed: the back-off starts over
    rates = parse_rates(" gmail.com=50, yahoo.com=2.5 ", "X")
    assert rates == {"gmail.com": 50.0, "yahoo.com": 2.5}
    with pytest.raises(ValueError, match="X: expected name=messages per second, got 'gmail'"):
        parse_rates("gmail", "X")
