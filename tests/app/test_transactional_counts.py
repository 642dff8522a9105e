"""A transactional email's send counters (lib/sending/transactional_counts.py): `sendCount`
and `stats.*`, moved by the send state machine's transitions only, through the REST API
and real deliveries to the outbox: one count per send and counter whatever repeats come
(an Idempotency-Key replay, a delivery's outcome recorded twice, duplicate provider
events); test sends count nothing."""

from __future__ import annotations

from typing import Any

from owlat.app.lib.sending import feedback, sends
from owlat.app.lib.sending.composition import SendKind
from owlat.app.lib.sending.send_tables import SEND_TABLES
from owlat.runtime.testing import in_mutation, in_query
from tests.app import test_transactional_api as api_tests
from tests.app.conftest import Site
from tests.app.mail_setup import settled
from tests.app.test_transactional_api import Setup, send

# the fixtures of the transactional API's tests: a published `order-receipt` and an API key
site, setup = api_tests.site, api_tests.setup
VARIABLES = {"orderId": "A-1", "total": 1}


async def _sent(setup: Setup, address: str, **body: Any) -> dict[str, Any]:
    response = await send(setup, email=address, dataVariables=VARIABLES, **body)
    assert response.status_code == 202, response.text
    return await settled(setup.owner, response.json()["data"]["transactionalEmailId"])


async def _counters(setup: Setup, email_id: str | None = None) -> tuple[int, dict[str, int]]:
    """sendCount, and the stats that are not 0."""
    counts = await setup.owner.query(
        "transactionalEmails:counts", {"transactionalEmailId": email_id or setup.email_id}
    )
    return counts["sendCount"], {key: n for key, n in counts["stats"].items() if n}


async def _events(site: Site, send_id: str, *events: feedback.Event) -> None:
    async def run(ctx: Any) -> None:
        for event in events:
            row = await ctx.db.get(send_id)
            await feedback.apply(ctx, SEND_TABLES["transactionalSends"], row, event)

    await in_mutation(site.application, run)


async def test_each_counter_moves_once_per_send(site: Site, setup: Setup) -> None:
    keyed = {"headers": {"Idempotency-Key": "order-1"}}
    first = await setup.http.post(
        "/transactional",
        json={"slug": "order-receipt", "email": "a@example.com", "dataVariables": VARIABLES},
        **keyed,
    )
    a = await settled(setup.owner, first.json()["data"]["transactionalEmailId"])
    assert a["status"] == "sent"
    replay = await setup.http.post(
        "/transactional",
        json={"slug": "order-receipt", "email": "a@example.com", "dataVariables": VARIABLES},
        **keyed,
    )
    assert replay.json() == first.json()
    assert await _counters(setup) == (1, {"sent": 1})
    # failed: an attachment that cannot be had (a loopback URL)
    b = await _sent(
        setup, "b@example.com", attachments=[{"filename": "r.pdf", "url": "https://127.0.0.1:9/r"}]
    )
    assert (b["status"], b["errorCode"]) == ("failed", "ATTACHMENT_UNAVAILABLE")
    assert await _counters(setup) == (2, {"sent": 1, "failed": 1})
    # a test send counts nothing
    test_id = await setup.owner.mutation(
        "transactionalEmails:sendTest",
        {
            "transactionalEmailId": setup.email_id,
            "to": "me@example.com",
            "dataVariables": VARIABLES,
        },
    )
    assert (await settled(setup.owner, test_id))["status"] == "sent"
    await _events(site, test_id, feedback.Event("delivered", 1.0))
    assert await _counters(setup) == (2, {"sent": 1, "failed": 1})

    # a delivery's outcome recorded again (a retried record) moves nothing
    async def record_again(ctx: Any) -> None:
        again = {"status": "sent", "provider": "outbox", "providerMessageId": "x"}
        failed = sends.failed_outcome("SERVER_ERROR", "late")
        for outcome in (again, failed):
            await sends.record(ctx, [{"sendId": a["_id"], "outcome": outcome, "attempts": []}], 2.0)
        await sends.record(ctx, [{"sendId": b["_id"], "outcome": failed, "attempts": []}], 2.0)

    await in_mutation(site.application, record_again)
    assert await _counters(setup) == (2, {"sent": 1, "failed": 1})

    # provider events, each repeated: counted on the first only
    await _events(
        site,
        a["_id"],
        *[feedback.Event("delivered", 3.0)] * 2,
        feedback.Event("opened", 4.0, prefetcher="apple"),
        *[feedback.Event("opened", 5.0)] * 2,
        *[feedback.Event("clicked", 6.0, url="https://example.com/")] * 2,
        *[feedback.Event("bounced", 7.0, bounce_type="soft")] * 2,
    )
    stats = {"sent": 1, "failed": 1, "delivered": 1, "opened": 1, "humanOpened": 1}
    stats |= {"clicked": 1, "bounced": 1, "softBounced": 1}
    assert await _counters(setup) == (2, stats)
    # soft then hard: the bounce moves from soft to hard, bounced stays one
    await _events(site, a["_id"], *[feedback.Event("bounced", 8.0, bounce_type="hard")] * 2)
    del stats["softBounced"]  # back to 0
    stats |= {"hardBounced": 1}
    assert await _counters(setup) == (2, stats)
    # a complaint (delivery evidence too), repeated
    c = await _sent(setup, "c@example.com")
    await _events(site, c["_id"], *[feedback.Event("complained", 9.0)] * 2)
    stats |= {"sent": 2, "delivered": 2, "complained": 1}
    assert await _counters(setup) == (3, stats)
    # a copy starts from nothing
    copy_id = await setup.owner.mutation(
        "transactionalEmails:duplicate", {"transactionalEmailId": setup.email_id}
    )
    assert await _counters(setup, copy_id) == (0, {})


async def test_outcomes_recorded_together_each_count_once(site: Site, setup: Setup) -> None:
    """One `record` of several sends' outcomes (sent, failed, a repeat, a test send's)
    moves each counter by exactly its sends."""

    def request(n: int, kind: SendKind = SendKind.TRANSACTIONAL) -> sends.SendRequest:
        return sends.SendRequest(
            setup.organization_id, kind, f"r{n}@example.com", "s", "t",
            transactional_email_id=setup.email_id,
        )  # fmt: skip

    async def deliver_together(ctx: Any) -> None:
        send_ids = [await sends.enqueue_send(ctx, request(n)) for n in range(5)]
        send_ids.append(await sends.enqueue_send(ctx, request(5, SendKind.TEST)))
        await sends.claim_many(ctx, send_ids, ["outbox"], 1.0, 60_000)
        ok = {"status": "sent", "provider": "outbox", "providerMessageId": "x"}
        failed = sends.failed_outcome("SERVER_ERROR", "refused")
        outcomes = [ok, ok, ok, failed, failed, ok, ok]  # the 7th: the first send again
        await sends.record(ctx, [
            {"sendId": send_id, "outcome": outcome, "attempts": []}
            for send_id, outcome in zip([*send_ids, send_ids[0]], outcomes, strict=True)
        ], 2.0)  # fmt: skip

    await in_mutation(site.application, deliver_together)
    assert await _counters(setup) == (5, {"sent": 3, "failed": 2})


async def test_sends_leave_the_email_document_alone_and_deletion_takes_the_counts(
    site: Site, setup: Setup
) -> None:
    async def email_and_count_rows(ctx: Any) -> tuple[dict[str, Any] | None, int]:
        email = await ctx.db.get(setup.email_id)
        rows = await ctx.db.query("transactionalCounts").collect()
        return (None if email is None else dict(email)), len(rows)

    before, _ = await in_query(site.application, email_and_count_rows)
    for n in range(12):
        await _sent(setup, f"r{n}@example.com")
    after, shard_rows = await in_query(site.application, email_and_count_rows)
    # the editor's queries read the email: a send must not rewrite it
    assert after == before
    assert await _counters(setup) == (12, {"sent": 12})
    assert 1 < shard_rows <= 8  # twelve sends spread over the shards
    await setup.owner.mutation(
        "transactionalEmails:remove",
        {"transactionalEmailId": setup.email_id, "forceWhilePublished": True},
    )
    assert tuple(await in_query(site.application, email_and_count_rows)) == (None, 0)
    assert (
        await setup.owner.query(
            "transactionalEmails:counts", {"transactionalEmailId": setup.email_id}
        )
        is None
    )
