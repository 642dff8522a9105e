"""The send lifecycle after `sent` (lib/sending/feedback.py), rule by rule: each test
applies events to a send row and reads what changed (send, contact, suppression list,
timeline, counters of the send table)."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.app.lib.sending import feedback
from owlat.app.lib.sending.send_states import Outcome
from owlat.app.lib.sending.send_tables import SEND_TABLES, SendTable
from owlat.runtime.application import Application
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import owner_and_editor

Counted = list[tuple[str, int]]


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    return owlat_on_both_engines


async def _setup(owlat: Application, status: str = "sent", kind: str = "transactional") -> str:
    """A contact and one send to it in `status`; the send's id."""
    owner, _, organization_id = await owner_and_editor(owlat)
    contact_id = await owner.mutation("contacts:createFromSession", {"email": "ada@example.com"})

    async def insert(ctx: Any) -> str:
        return str(
            await ctx.db.insert(
                "transactionalSends",
                {"organizationId": organization_id, "kind": kind, "contactId": contact_id,
                 "email": "ada@example.com", "fromAddress": "a@b.co", "subject": "S",
                 "text": "t", "headers": {}, "deliveryKey": "k", "messageId": "m@b.co",
                 "status": status, "attempts": 1, "queuedAt": 1.0, "updatedAt": 1.0},
            )
        )  # fmt: skip

    return str(await in_mutation(owlat, insert))


async def _apply(
    owlat: Application, send_id: str, *events: feedback.Event
) -> tuple[list[Outcome], Counted]:
    counted: Counted = []

    async def count(ctx: Any, row: Any, counter: str, delta: int) -> None:
        counted.append((counter, delta))

    table = SendTable("transactionalSends", count=count)

    async def run(ctx: Any) -> list[Outcome]:
        counted.clear()  # a retried transaction (a write conflict) counts again
        outcomes = []
        for event in events:
            outcomes.append(await feedback.apply(ctx, table, await ctx.db.get(send_id), event))
        return outcomes

    return await in_mutation(owlat, run), counted


async def _state(owlat: Application, send_id: str) -> dict[str, Any]:
    async def read(ctx: Any) -> dict[str, Any]:
        send = dict(await ctx.db.get(send_id))
        contact = dict(await ctx.db.get(send["contactId"]))
        timeline = [a["activityType"] for a in await ctx.db.query("contactActivities").collect()]
        blocked = [dict(b) for b in await ctx.db.query("blockedEmails").collect()]
        return {"send": send, "contact": contact, "timeline": timeline[1:], "blocked": blocked}

    return await in_query(owlat, read)


def _event(kind: Any, at: float = 10.0, **fields: Any) -> feedback.Event:
    return feedback.Event(kind, at, **fields)


async def test_the_registry_holds_transactional_and_campaign_sends() -> None:
    assert list(SEND_TABLES) == ["transactionalSends", "emailSends"]
    assert SEND_TABLES["emailSends"].count is not None
    assert SEND_TABLES["emailSends"].source_field == "campaignId"


async def test_nothing_happens_to_a_send_not_yet_sent(owlat: Application) -> None:
    send_id = await _setup(owlat, "sending")
    outcomes, counted = await _apply(owlat, send_id, _event("opened"), _event("bounced"))
    assert outcomes == [Outcome.ILLEGAL, Outcome.ILLEGAL] and counted == []
    state = await _state(owlat, send_id)
    assert state["send"]["status"] == "sending" and state["timeline"] == []


async def test_delivery_then_opens_count_each_time_but_act_once(owlat: Application) -> None:
    send_id = await _setup(owlat)
    _, counted = await _apply(
        owlat,
        send_id,
        _event("delivered", 5.0),
        _event("opened", 6.0, prefetcher="apple"),
        _event("opened", 7.0),
        _event("opened", 8.0),
    )
    assert counted == [("delivered", 1), ("opened", 1), ("humanOpened", 1)]
    state = await _state(owlat, send_id)
    send = state["send"]
    assert (send["status"], send["deliveredAt"], send["openedAt"]) == ("opened", 5.0, 6.0)
    assert (send["openCount"], send["proxyOpenCount"], send["humanOpenedAt"]) == (3, 1, 7.0)
    assert send["updatedAt"] == 7.0  # the repeat open at 8.0 only counted
    assert state["contact"]["hasOpened"] is True
    assert state["timeline"] == ["email_opened", "email_opened"]  # the proxy's, the reader's


async def test_clicks_append_links_and_time_out_of_order_opens(owlat: Application) -> None:
    send_id = await _setup(owlat)
    outcomes, counted = await _apply(
        owlat,
        send_id,
        _event("clicked", url="https://a.example/"),
        _event("clicked", url="https://a.example/"),
        _event("clicked", url="https://b.example/"),
        _event("opened"),  # the pixel loaded after the click
    )
    assert outcomes[0] == Outcome.APPLY
    state = await _state(owlat, send_id)
    send = state["send"]
    assert (send["status"], send["clickCount"]) == ("clicked", 3)
    assert [link["url"] for link in send["clickedLinks"]] == [
        "https://a.example/", "https://a.example/", "https://b.example/",
    ]  # fmt: skip
    assert send["openCount"] == 1 and send["deliveredAt"] == 10.0
    assert counted == [("delivered", 1), ("clicked", 1), ("opened", 1), ("humanOpened", 1)]
    assert state["contact"]["hasClicked"] is True
    assert state["timeline"] == ["email_clicked", "email_clicked", "email_opened"]


async def test_a_hard_bounce_suppresses_once_and_is_terminal(owlat: Application) -> None:
    send_id = await _setup(owlat)
    outcomes, counted = await _apply(
        owlat,
        send_id,
        _event("bounced", bounce_type="hard", message="550 gone"),
        _event("bounced", bounce_type="hard"),
        _event("complained"),
        _event("delivered"),
    )
    assert outcomes == [Outcome.APPLY, Outcome.DUPLICATE, Outcome.TERMINAL, Outcome.TERMINAL]
    assert counted == [("bounced", 1), ("hardBounced", 1)]
    state = await _state(owlat, send_id)
    assert (state["send"]["status"], state["send"]["errorMessage"]) == ("bounced", "550 gone")
    assert "deliveredAt" not in state["send"]
    (blocked,) = state["blocked"]
    assert (blocked["reason"], blocked["bounceType"]) == ("bounced", "hard")
    assert state["timeline"] == ["email_bounced"]


async def test_soft_then_hard_moves_the_counter(owlat: Application) -> None:
    send_id = await _setup(owlat)
    _, counted = await _apply(
        owlat, send_id, _event("bounced", bounce_type="soft"), _event("bounced", bounce_type="hard")
    )
    assert counted == [
        ("bounced", 1), ("softBounced", 1), ("softBounced", -1), ("hardBounced", 1),
    ]  # fmt: skip
    state = await _state(owlat, send_id)
    assert state["send"]["bounceType"] == "hard"
    assert state["contact"]["softBounceCount"] == 1
    assert [b["bounceType"] for b in state["blocked"]] == ["hard"]


async def test_a_complaint_counts_as_delivery_and_suppresses(owlat: Application) -> None:
    send_id = await _setup(owlat)
    _, counted = await _apply(owlat, send_id, _event("complained"), _event("complained"))
    assert counted == [("delivered", 1), ("complained", 1)]
    state = await _state(owlat, send_id)
    assert (state["send"]["status"], state["send"]["deliveredAt"]) == ("complained", 10.0)
    assert [b["reason"] for b in state["blocked"]] == ["complained"]


@pytest.mark.parametrize(
    ("existing", "after"),
    [("manual", "manual"), ("unengaged", "complained"), ("bounced", "bounced")],
)
async def test_suppression_never_downgrades(owlat: Application, existing: str, after: str) -> None:
    send_id = await _setup(owlat)

    async def block(ctx: Any) -> None:
        send = await ctx.db.get(send_id)
        await ctx.db.insert(
            "blockedEmails",
            {"organizationId": send["organizationId"], "email": "ada@example.com",
             "reason": existing, "createdAt": 1.0},
        )  # fmt: skip

    await in_mutation(owlat, block)
    await _apply(owlat, send_id, _event("complained"))
    (blocked,) = (await _state(owlat, send_id))["blocked"]
    assert blocked["reason"] == after


async def test_test_sends_change_only_their_row(owlat: Application) -> None:
    send_id = await _setup(owlat, kind="test")
    _, counted = await _apply(
        owlat, send_id, _event("opened"), _event("bounced", bounce_type="hard")
    )
    state = await _state(owlat, send_id)
    assert state["send"]["status"] == "bounced"
    assert counted == [] and state["blocked"] == [] and state["timeline"] == []
    assert not state["contact"].get("hasOpened")
