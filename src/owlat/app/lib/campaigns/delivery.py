"""A sending campaign's delivery workers (scheduled actions) and their recovery.

    deliver(campaignId)                       internal action, `WORKERS` of them at a time
        plan (query): the campaign route, its providers' sealed settings and health, once
        per run; the provider objects are kept open between runs (`kept_provider`: an
        SMTP relay's pooled connections are reused).
        then, batch after batch for up to `RUN_SECONDS`:
        claim (one mutation): up to `BATCH` sends `queued` (or `sending` past the lease,
          when the route's providers dedupe by key), each re-checked for eligibility
          (`drafts.ineligible`: an unsubscribe or a block committed before the claim
          stops the message; refused ones become `failed` RECIPIENT_SUPPRESSED) and moved
          to `sending` with its Message-ID; nothing when the campaign is not `sending`
          (paused, cancelled): the worker stops.
        throttle: each message is admitted by `throttle.py` (token buckets per provider
          and receiving domain, back-off after deferrals); one it does not admit soon is
          not sent but goes back to `queued`, due later.
        compose (`composing.py`, in the signing processes): the template (as copied at
          start, `content.py`; the send's A/B variant) compiled once (cached) and filled
          in per recipient; when the organization tracks campaigns (`tracking.policy`,
          decided per claim), its links become signed click links and an open pixel is
          added (`tracking.links`), with the send's id; MIME and DKIM.
        send: `sends.deliver_prepared` (route choice, health) without in-process
          retries, all the batch's messages at once: the provider's own pool bounds the
          concurrency. A deferral (4xx, a lost
          connection before the end of DATA, a rate limit) backs its scope off and the
          message goes back to `queued` (`throttle.py`: never doubled, never lost).
        record (one mutation): every outcome (sent, failed, or back to queued with its
          due time) of a send still under the run's claim (compare-and-set), the
          campaign's counters, provider health, and completion when nothing is left.
        A run hands its scheduler slot back by scheduling the next one; a run that finds
        nothing due while the walk goes on looks again after `IDLE_WAIT`, and one that
        finds only deferred sends when the first of them is due.

At most once: a send is `sending` (committed) before its provider call, and its claim
names the worker process's attempt journal (`claimedBy`), where the worker writes the
send's claim right before a provider is handed it (for SMTP: when a pooled connection
takes it, before MAIL, and again before the write that ends its DATA;
`sending/journal.py`). `recover` (an action, so that it runs where the journals are: a
cron, and at start) takes sends left `sending` past the lease
(OWLAT_SEND_LEASE_SECONDS): through providers that dedupe by key (outbox, Resend) they
are claimed again with the same key and Message-ID; those whose journal is known here and
shows no attempt, or an SMTP transaction that never ended its DATA, go back to `queued`
(sent once, after the eligibility checks of a new claim); those whose DATA was ended are
`sent`, DELIVERY_UNCONFIRMED, and counted as sent (the relay most likely took them); the
others become `failed` DELIVERY_UNCERTAIN, as in `sends.py`. So a crash with journals here
leaves no send uncertain, and skips a recipient only in the window `journal.py` states (the
end of DATA written, yet not taken by the relay). A worker renews the lease of its claims
while it runs (`leases.py`), and a send whose journal's writer is alive here is left for a
later look (`journal.held`): a slow batch is not taken for a crash.
A cancelled campaign's sends are ended by `cancel_queued` (a chain of scheduled runs):
the queued ones CANCELLED, then those left `sending` past the lease: CANCELLED where their
claim's journal, read by an action where the journals are, shows no attempt (or no end
of DATA), `sent` DELIVERY_UNCONFIRMED where it shows the end of DATA, otherwise
DELIVERY_UNCERTAIN (whatever the route: nothing claims them again). It also starts workers
for a sending campaign nobody has worked on for `IDLE_MS` (a crash loses the running
actions), schedules again a walk whose hop has not moved for as long (a hop that failed: a
hop for a position already walked does nothing) and completes campaigns that are finished.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from owlat.app.lib import instance
from owlat.app.lib.audience import organization_rows, property_definitions
from owlat.app.lib.campaigns import composing, content, throttle
from owlat.app.lib.campaigns.composing import delivery_key
from owlat.app.lib.campaigns.drafts import from_address, ineligible_all
from owlat.app.lib.campaigns.states import CampaignStatus
from owlat.app.lib.campaigns.walk import (
    complete_if_finished,
    count_variants_sent,
    job_of,
    pending,
    schedule_hop,
    spawn_workers,
    stats_of,
)
from owlat.app.lib.email_providers.routing import Health, MessageType, Route
from owlat.app.lib.email_providers.smtp import refused_at_recipient
from owlat.app.lib.email_providers.types import EmailMessage, EmailProvider
from owlat.app.lib.errors import AppError
from owlat.app.lib.list_subscriptions import memberships
from owlat.app.lib.rendering import contact_variables
from owlat.app.lib.sending import journal, leases, sends
from owlat.app.lib.sending.composition import (
    CompositionError,
    SendKind,
    feedback_id,
    list_id_header,
    mailbox,
    message_id_for,
)
from owlat.app.lib.sending.routes import (
    Attempt,
    enabled_providers,
    is_idempotent,
    record_attempts,
    restored_health,
    route_from_document,
    takes_fields,
)
from owlat.app.lib.sending.send_states import SendStatus
from owlat.app.lib.tracking.policy import tracking_for
from owlat.runtime import UNDEFINED, ActionCtx, MutationCtx, QueryCtx, internal

BATCH = 100  # sends per claim: per worker, the messages a crash can leave uncertain
RUN_SECONDS = 10.0  # a worker's run before it hands its slot back
IDLE_WAIT = 0.2  # seconds before looking again while the walk is behind
CANCEL_BATCH = 500  # queued sends failed per mutation after a cancel
IDLE_MS = 30_000.0  # a sending campaign without progress this long gets new workers
CANCELLED = ("CANCELLED", "The campaign was cancelled before this send")


# -- the worker's mutations and query --------------------------------------------------------


async def plan(ctx: QueryCtx, campaign_id: str) -> dict[str, Any] | None:
    """The campaign route of a sending campaign (`sends.route_plan`), else None."""
    campaign = await ctx.db.get(campaign_id)
    if campaign is None or campaign["status"] != CampaignStatus.SENDING:
        return None
    return await sends.route_plan(ctx, campaign["organizationId"], str(MessageType.CAMPAIGN))


async def claim(
    ctx: MutationCtx,
    campaign_id: str,
    generation: int,
    route_providers: Sequence[str],
    limit: int,
    now: float,
    lease_ms: float,
    journal_name: str | None = None,
) -> dict[str, Any]:
    """Claim up to `limit` sends (module docstring): `{stop}` when the campaign is not
    sending or the worker's `generation` is not the campaign's latest, else `{sends,
    walking}` and, with sends, what composing them needs. `journal_name`: the claiming
    process's attempt journal (`journal.py`), recorded as the claim's `claimedBy`."""
    campaign = await ctx.db.get(campaign_id)
    job = await job_of(ctx, campaign_id)
    if campaign is None or job is None or campaign["status"] != CampaignStatus.SENDING:
        return {"stop": True}
    if campaign.get("workerGeneration") != generation:
        return {"stop": True}
    rows = await _claimable(ctx, campaign_id, route_providers, limit, now, lease_ms)
    walking = job["phase"] != "done"
    if not rows:
        due_in = await _due_in(ctx, campaign_id, now)
        return {"stop": False, "sends": [], "walking": walking, "dueIn": due_in}
    organization_id = campaign["organizationId"]
    refusal = None
    try:
        sender = await from_address(ctx, campaign)
        await sends.check_sender(ctx, organization_id, sender, route_providers)
    except AppError as error:  # the sender or its domain's verification is gone since
        sender, refusal = "", (error.error_code, str(error.data))
    audience = job["audience"]
    date_keys = [
        key for key, row in (await property_definitions(ctx, organization_id)).items()
        if row["type"] == "date"
    ]  # fmt: skip
    claimed: list[dict[str, Any]] = []
    refused = failed = 0
    contacts, members = await _audience_entries(ctx, audience, rows)
    eligibility = await ineligible_all(ctx, list(zip(contacts, members, strict=True)))
    for row, contact, member, why in zip(rows, contacts, members, eligibility, strict=True):
        reason = refusal
        if reason is None and row["attempts"] >= sends.MAX_ATTEMPTS:
            reason = ("TOO_MANY_ATTEMPTS", f"Delivery was interrupted {row['attempts']} times")
        if reason is None and audience["kind"] == "list" and contact is not None and member is None:
            reason = ("RECIPIENT_SUPPRESSED", f"{row['email']} left the campaign's list")
        if reason is None and why is not None:
            reason = ("RECIPIENT_SUPPRESSED", why)
        if reason is not None:
            await _fail(ctx, row, *reason, now)
            if reason[0] == "RECIPIENT_SUPPRESSED":
                refused += 1
            else:
                failed += 1
            continue
        assert contact is not None
        message_id = row.get("messageId") or message_id_for(
            EmailMessage(
                to=row["email"],
                subject="",
                text="",
                from_address=sender,
                idempotency_key=delivery_key(row["_id"]),
            )
        )
        await ctx.db.patch(
            row["_id"],
            {
                "status": str(SendStatus.SENDING),
                "claimedAt": now,
                "claimedBy": journal_name or UNDEFINED,
                "attempts": row["attempts"] + 1,
                "routeProviders": list(route_providers),
                "messageId": message_id,
                "updatedAt": now,
            },
        )
        claimed.append(
            {
                "sendId": row["_id"],
                "claimedAt": now,
                "contactId": row["contactId"],
                "email": row["email"],
                "messageId": message_id,
                "language": contact.get("language"),
                "variables": contact_variables(contact, date_keys=date_keys)
                | content.send_variables(campaign, row),
                "variant": row.get("abVariant"),
            }
        )
    if refused or failed:
        await _count(ctx, campaign_id, now, suppressed=refused, failed=failed)
    if not claimed:
        return {"stop": False, "sends": [], "walking": walking, "refused": refused + failed}
    variants = await content.templates_for(ctx, campaign_id)  # copied at start
    for fields in variants.values():
        fields["showUnsubscribe"] = audience["kind"] == "list"
    domain = mailbox(sender, "From").domain.lower()
    list_header = None
    if audience["kind"] == "list":
        mailing_list = await ctx.db.get(audience["listId"])
        name = mailing_list["name"] if mailing_list is not None else campaign["name"]
        list_header = list_id_header(name, audience["listId"], domain)
    settings_reply = campaign.get("replyTo")
    tracking = await tracking_for(ctx, {"kind": "campaign", "organizationId": organization_id})
    return {
        "stop": False,
        "sends": claimed,
        "walking": walking,
        "variants": variants,
        "fromAddress": sender,
        "replyTo": settings_reply,
        "listId": list_header,
        "tracking": tracking,
        "feedbackId": feedback_id(campaign_id, organization_id, SendKind.CAMPAIGN),
        "dkim": sends.dkim_key(
            {"fromAddress": sender}, await organization_rows(ctx, "domains", organization_id)
        ),
    }


async def _audience_entries(
    ctx: MutationCtx, audience: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any] | None], list[dict[str, Any] | None]]:
    """The contact of each send of `rows` (None: gone) and, for a list audience, its
    membership of the list (None: none, or a segment audience), the memberships read in
    one step (`list_subscriptions.memberships`)."""
    contacts = [await ctx.db.get(row["contactId"]) for row in rows]
    members: list[dict[str, Any] | None] = [None] * len(rows)
    if audience["kind"] == "list":
        present = [i for i, contact in enumerate(contacts) if contact is not None]
        found = await memberships(ctx, audience["listId"], [rows[i]["contactId"] for i in present])
        for i, member in zip(present, found, strict=True):
            members[i] = member
    return contacts, members


async def _claimable(
    ctx: MutationCtx,
    campaign_id: str,
    route_providers: Sequence[str],
    limit: int,
    now: float,
    lease_ms: float,
) -> list[dict[str, Any]]:
    """Queued sends, then (if there is room and the route dedupes) `sending` ones past
    the lease that may be sent again with their key (`sends.reclaimable`)."""
    rows = await _in_status(ctx, campaign_id, SendStatus.QUEUED, now, limit)  # due ones
    if len(rows) < limit and is_idempotent(route_providers):
        for row in await _in_status(
            ctx, campaign_id, SendStatus.SENDING, now - lease_ms, limit - len(rows)
        ):
            if sends.reclaimable(row, route_providers, now):
                rows.append(row)
    return rows


async def _due_in(ctx: QueryCtx, campaign_id: str, now: float) -> float | None:
    """Seconds until the first queued send not yet due (deferred, `throttle.py`) is due;
    None when none is queued."""
    first = await _in_status(ctx, campaign_id, SendStatus.QUEUED, None, 1)
    return max(0.0, (first[0]["updatedAt"] - now) / 1000.0) if first else None


async def _in_status(
    ctx: QueryCtx, campaign_id: str, status: SendStatus, before: float | None, limit: int
) -> list[dict[str, Any]]:
    def index(q: Any) -> Any:
        q = q.eq("campaignId", campaign_id).eq("status", str(status))
        return q if before is None else q.lte("updatedAt", before)

    rows = await ctx.db.query("emailSends").with_index("by_campaign_status", index).take(limit)
    return [dict(row) for row in rows]


async def _fail(
    ctx: MutationCtx, row: Mapping[str, Any], code: str, message: str, now: float
) -> None:
    await ctx.db.patch(
        row["_id"],
        {
            "status": str(SendStatus.FAILED),
            "failedAt": now,
            "errorCode": code,
            "errorMessage": message[:2000],
            "updatedAt": now,
        },
    )


async def _count(
    ctx: MutationCtx,
    campaign_id: str,
    now: float,
    *,
    sent: int = 0,
    failed: int = 0,
    suppressed: int = 0,
) -> dict[str, Any]:
    """Add to the campaign's counters; the counters after."""
    stats = await stats_of(ctx, campaign_id)
    assert stats is not None, campaign_id
    changes = {
        "sent": stats["sent"] + sent,
        "failed": stats["failed"] + failed,
        "suppressed": stats["suppressed"] + suppressed,
        "updatedAt": now,
    }
    await ctx.db.patch(stats["_id"], changes)
    return {**stats, **changes}


async def record(
    ctx: MutationCtx,
    campaign_id: str,
    outcomes: Sequence[Mapping[str, Any]],
    attempts: Sequence[Attempt],
    now: float,
    journal_name: str | None = None,
) -> None:
    """Record a batch's outcomes (`{sendId, claimedAt, status: sent, provider,
    providerMessageId}` or `{sendId, claimedAt, status: failed, errorCode,
    errorMessage}`), the counters, provider health, and the campaign's completion.
    A compare-and-set, as `leases.renew`: an outcome changes its send only while it is
    `sending` under the same claim (`claimedAt`, and `claimedBy` = `journal_name`, the
    claiming run's journal), so the record of a run whose claim was recovered, and
    perhaps claimed again by another run, changes nothing and counts nothing."""
    campaign = await ctx.db.get(campaign_id)
    if campaign is None:
        return
    sent = failed = 0
    variants_sent: dict[str, int] = {}
    for outcome in outcomes:
        row = await ctx.db.get(outcome["sendId"])
        if (
            row is None
            or row["status"] != SendStatus.SENDING
            or row.get("claimedAt") != outcome["claimedAt"]
            or row.get("claimedBy") != journal_name
        ):
            continue
        if outcome["status"] == "sent":
            await _sent(ctx, row, outcome, now, variants_sent)
            sent += 1
        elif outcome["status"] == "deferred" and campaign["status"] != CampaignStatus.CANCELLED:
            failed += await _requeue(ctx, row, outcome, now)
        elif outcome["status"] == "deferred":
            await _fail(ctx, row, *CANCELLED, now)
            failed += 1
        else:
            await _fail(ctx, row, outcome["errorCode"], outcome["errorMessage"], now)
            failed += 1
    if attempts:
        await record_attempts(ctx, campaign["organizationId"], attempts, now)
    stats = await _count(ctx, campaign_id, now, sent=sent, failed=failed)
    await count_variants_sent(ctx, campaign_id, variants_sent)
    job = await job_of(ctx, campaign_id)
    if job is not None:
        await complete_if_finished(ctx, campaign, job, stats, now)


async def _sent(
    ctx: MutationCtx,
    row: Mapping[str, Any],
    outcome: Mapping[str, Any],
    now: float,
    variants_sent: dict[str, int],
) -> None:
    """A send `sent` through `outcome` (`sends.sent_changes`), its A/B variant's count
    added to `variants_sent`."""
    await ctx.db.patch(row["_id"], sends.sent_changes(outcome, now))
    if row.get("abVariant"):
        variants_sent[row["abVariant"]] = variants_sent.get(row["abVariant"], 0) + 1


async def _requeue(
    ctx: MutationCtx, row: Mapping[str, Any], outcome: Mapping[str, Any], now: float
) -> int:
    """A deferred or held send back to `queued`, due `dueInMs` from now, its claim undone
    (`throttle.py`); a provider's deferral is counted, and the send fails at
    `MAX_DEFERRALS`. 1 when it failed, else 0."""
    deferrals = (row.get("deferrals") or 0) + (1 if outcome.get("errorCode") else 0)
    if deferrals >= throttle.MAX_DEFERRALS:
        await _fail(ctx, row, outcome["errorCode"], outcome["errorMessage"], now)
        return 1
    changes: dict[str, Any] = {
        "status": str(SendStatus.QUEUED),
        "attempts": max(0, row["attempts"] - 1),
        "updatedAt": now + outcome["dueInMs"],
    }
    if outcome.get("errorCode"):
        changes.update(
            deferrals=deferrals,
            errorCode=outcome["errorCode"],
            errorMessage=outcome["errorMessage"][:2000],
        )
    await ctx.db.patch(row["_id"], changes)
    return 0


# -- the worker ------------------------------------------------------------------------------


async def deliver(
    ctx: ActionCtx, campaign_id: str, generation: int, lease_ms: float, renewal: leases.Renewal
) -> None:
    """One worker run (module docstring); `renewal` renews the lease of its claims."""
    route_plan = await ctx.run_query(internal.campaign_sends.plan, {"campaignId": campaign_id})
    if route_plan is None:
        return
    organization_id = route_plan["organizationId"]
    route = route_from_document(route_plan["route"])
    route_providers = enabled_providers(route)
    providers, unavailable = await sends.open_providers(
        organization_id, route_providers, route_plan["providers"]
    )
    health = restored_health(route_plan["health"])
    attempts_journal = journal.opened(instance.current().data_dir)
    journaled = {} if attempts_journal is None else {"journal": attempts_journal.name}
    deadline = time.monotonic() + RUN_SECONDS
    again = {"campaignId": campaign_id, "generation": generation}
    while time.monotonic() < deadline:
        batch = await renewal.claimed(ctx.run_mutation(
            internal.campaign_sends.claim,
            {**again, "routeProviders": route_providers, "leaseMs": lease_ms, **journaled},
        ), "sends")  # fmt: skip
        if batch["stop"]:
            return
        if not batch["sends"]:
            if batch.get("refused"):
                continue
            due_in = batch.get("dueIn")  # deferred sends (throttle.py) wait their time
            if batch["walking"] or due_in is not None:
                wait = IDLE_WAIT if batch["walking"] else max(IDLE_WAIT, due_in)
                await ctx.scheduler.run_after(wait * 1000, internal.campaign_sends.deliver, again)
            return
        outcomes, attempts = await _send_batch(
            organization_id, batch, route, providers, unavailable, health, attempts_journal
        )
        await ctx.run_mutation(
            internal.campaign_sends.record,
            {
                "campaignId": campaign_id,
                "outcomes": [
                    {**outcome, "sendId": claimed["sendId"], "claimedAt": claimed["claimedAt"]}
                    for outcome, claimed in zip(outcomes, batch["sends"], strict=True)
                ],
                "attempts": [attempt.to_json() for attempt in attempts],
                **journaled,
            },
        )
    await ctx.scheduler.run_after(0, internal.campaign_sends.deliver, again)


async def _send_batch(
    organization_id: str,
    batch: Mapping[str, Any],
    route: Route,
    providers: Mapping[str, EmailProvider],
    unavailable: str | None,
    health: Health,
    attempts_journal: journal.Journal | None = None,
) -> tuple[list[dict[str, Any]], list[Attempt]]:
    """Every claimed send of `batch` admitted by the throttle (`throttle.py`), composed
    and DKIM-signed all at once in the signing processes (`composing.py`), then sent at
    once, each written to `attempts_journal` right before its provider takes it;
    (outcomes, attempts)."""
    attempts: list[Attempt] = []
    gate = throttle.current(instance.current().delivery_rates)
    # the provider scope: the route's first provider (a failover's backup shares it)
    provider = next(iter(enabled_providers(route)), "none")
    admitted: list[tuple[int, float, str]] = []  # (position, wait, domain)
    outcomes: list[dict[str, Any]] = []
    for position, claimed in enumerate(batch["sends"]):
        outcomes.append({})
        if unavailable is not None:
            outcomes[position] = sends.failed_outcome("PROVIDER_UNAVAILABLE", unavailable)
            continue
        domain = claimed["email"].rpartition("@")[2].lower()
        wait, admit = gate.admit(organization_id, provider, domain)
        if not admit:
            outcomes[position] = {"status": "deferred", "dueInMs": wait * 1000.0}
            continue
        admitted.append((position, wait, domain))
    claims = [batch["sends"][position] for position, _, _ in admitted]
    try:
        fields = takes_fields(enabled_providers(route))
        composed = await composing.compose_all(organization_id, batch, claims, fields=fields)
    except CompositionError as error:  # the DKIM key does not open
        for position, *_ in admitted:
            outcomes[position] = sends.failed_outcome("INVALID_MESSAGE", str(error))
        return outcomes, attempts
    ready: list[tuple[int, EmailMessage, float, str]] = []  # (position, message, wait, domain)
    for (position, wait, domain), claimed, message in zip(admitted, claims, composed, strict=True):
        if isinstance(message, CompositionError):
            outcomes[position] = sends.failed_outcome("INVALID_MESSAGE", str(message))
            continue
        if attempts_journal is not None:
            noter = attempts_journal.noter(claimed["sendId"], claimed["claimedAt"])
            message = dataclasses.replace(message, on_attempt=noter)
        ready.append((position, message, wait, domain))

    async def one(message: EmailMessage, wait: float, domain: str) -> dict[str, Any]:
        if wait > 0:
            await asyncio.sleep(wait)
        outcome = await sends.deliver_prepared(
            message, route, providers, health, attempts, retry=False
        )
        if outcome["status"] == "sent":
            gate.succeeded(organization_id, provider, domain)
        elif outcome["errorCode"] in throttle.DEFERRABLE:
            text = outcome["errorMessage"]
            scope = domain if refused_at_recipient(text) else f"provider:{provider}"
            pause = gate.deferred(organization_id, scope, outcome.get("retryAfter"))
            return {"status": "deferred", "dueInMs": pause * 1000.0,
                    "errorCode": outcome["errorCode"], "errorMessage": text}  # fmt: skip
        return outcome

    sent = await asyncio.gather(*(one(message, wait, domain) for _, message, wait, domain in ready))
    for (position, *_), outcome in zip(ready, sent, strict=True):
        outcomes[position] = outcome
    return outcomes, attempts


# -- cancel ----------------------------------------------------------------------------------


READ_JOURNALS = -1.0  # `cancel_queued`'s answer: read the stalled sends' journals first


async def cancel_queued(
    ctx: MutationCtx,
    campaign_id: str,
    now: float,
    lease_ms: float,
    unattempted: Sequence[Mapping[str, Any]] | None = None,
    held: Sequence[Mapping[str, Any]] = (),
    ended: Sequence[Mapping[str, Any]] = (),
) -> float | None:
    """Fail up to `CANCEL_BATCH` of a cancelled campaign's `queued` sends (CANCELLED,
    counted as failed); once none is left, its sends left `sending` past the lease: those
    in `unattempted` (`{sendId, claimedAt}`: their claim's journal shows no attempt, or
    an SMTP transaction that never ended its DATA, `journal.verdicts`) CANCELLED, those
    in `ended` `sent` (DELIVERY_UNCONFIRMED, `sends.unconfirmed`), the others DELIVERY_UNCERTAIN
    (no worker claims them again, whatever the route), except the `held` ones (a live writer
    may still deliver them, `journal.held`). When to look again, in seconds (0: more to end;
    later: sends still `sending` within the lease, or held), None when nothing is left, or
    `READ_JOURNALS` when stalled sends name a journal and `unattempted` was not given."""
    campaign = await ctx.db.get(campaign_id)
    if campaign is None or campaign["status"] != CampaignStatus.CANCELLED:
        return None
    rows = await _in_status(ctx, campaign_id, SendStatus.QUEUED, None, CANCEL_BATCH)
    for row in rows:
        await _fail(ctx, row, *CANCELLED, now)
    if rows:
        await _count(ctx, campaign_id, now, failed=len(rows))
        return 0.0
    stalled = await _in_status(ctx, campaign_id, SendStatus.SENDING, now - lease_ms, CANCEL_BATCH)
    if unattempted is None and any(_journaled(row) for row in stalled):
        return READ_JOURNALS
    alive = {(item["sendId"], item["claimedAt"]) for item in held}
    if alive:
        stalled = [row for row in stalled if (row["_id"], row.get("claimedAt")) not in alive]
    never = {(item["sendId"], item["claimedAt"]) for item in unattempted or ()}
    if stalled:
        await _end_stalled(ctx, campaign_id, stalled, now, ended, never)
        return 0.0
    if alive:
        return lease_ms / 3000.0  # a renewal's time (`leases.py`)
    claimed = await _in_status(ctx, campaign_id, SendStatus.SENDING, None, 1)
    if not claimed:
        return None
    return max(0.0, float(claimed[0]["updatedAt"] + lease_ms - now) / 1000.0)


async def _end_stalled(
    ctx: MutationCtx,
    campaign_id: str,
    stalled: Sequence[Mapping[str, Any]],
    now: float,
    ended: Sequence[Mapping[str, Any]],
    cancelled: AbstractSet[tuple[str, float]] = frozenset(),
) -> dict[str, Any]:
    """End stalled sends that are claimed no more: those `cancelled` (`{(sendId,
    claimedAt)}`) CANCELLED, those `ended` (`journal.verdicts`) `sent`,
    DELIVERY_UNCONFIRMED, the others DELIVERY_UNCERTAIN; counted. The counters after."""
    done = {(item["sendId"], item["claimedAt"]) for item in ended}
    variants_sent: dict[str, int] = {}
    sent = 0
    for row in stalled:
        claim = (row["_id"], row.get("claimedAt"))
        if claim in cancelled:
            await _fail(ctx, row, *CANCELLED, now)
        elif claim in done:
            await _sent(ctx, row, sends.unconfirmed(row), now, variants_sent)
            sent += 1
        else:
            await _fail(ctx, row, "DELIVERY_UNCERTAIN", sends.UNCERTAIN, now)
    await count_variants_sent(ctx, campaign_id, variants_sent)
    return await _count(ctx, campaign_id, now, sent=sent, failed=len(stalled) - sent)


# -- recovery --------------------------------------------------------------------------------


async def stalled(
    ctx: QueryCtx, now: float, lease_ms: float, campaign_id: str | None = None
) -> list[dict[str, Any]]:
    """The sends of sending campaigns (or of `campaign_id`, whatever its status) left
    `sending` past the lease through providers that do not dedupe, whose claim names an
    attempt journal: `{sendId, claimedAt, claimedBy}` (what `journal.unattempted` reads)."""
    if campaign_id is None:
        ids = [campaign["_id"] for campaign in await _sending_campaigns(ctx)]
    else:
        ids = [campaign_id]
    found = []
    for each in ids:
        for row in await _in_status(ctx, each, SendStatus.SENDING, now - lease_ms, 500):
            if _journaled(row):
                found.append(
                    {
                        "sendId": row["_id"],
                        "claimedAt": row["claimedAt"],
                        "claimedBy": row["claimedBy"],
                    }
                )
    return found


def _journaled(row: Mapping[str, Any]) -> bool:
    """Whether a stalled send's claim names a journal that can tell if it was attempted
    (through providers that dedupe by key it is simply claimed again)."""
    return bool(row.get("claimedBy")) and not is_idempotent(row.get("routeProviders") or [])


async def _sending_campaigns(ctx: QueryCtx) -> list[dict[str, Any]]:
    return await (
        ctx.db.query("campaigns")
        .with_index("by_status_scheduled", lambda q: q.eq("status", str(CampaignStatus.SENDING)))
        .take(100)
    )


async def recover(
    ctx: MutationCtx,
    now: float,
    lease_ms: float,
    idle_ms: float,
    unattempted: Sequence[Mapping[str, Any]] = (),
    held: Sequence[Mapping[str, Any]] = (),
    ended: Sequence[Mapping[str, Any]] = (),
) -> int:
    """Fail stalled non-dedupable sends, except the `unattempted` ones (`{sendId,
    claimedAt}`: their claim's journal shows no attempt, or an SMTP transaction that
    never ended its DATA, `journal.verdicts`), which go back to `queued`, the `ended`
    ones, `sent` DELIVERY_UNCONFIRMED (`_end_stalled`), and the `held` ones (a live writer may
    still deliver them, `journal.held`), left alone; start workers for idle campaigns (at
    once where some went back), complete the finished ones (module docstring); how many
    campaigns were looked at."""
    back = {(item["sendId"], item["claimedAt"]) for item in unattempted}
    alive = {(item["sendId"], item["claimedAt"]) for item in held}
    campaigns = await _sending_campaigns(ctx)
    for campaign in campaigns:
        campaign_id = campaign["_id"]
        stalled: list[dict[str, Any]] = []
        requeued = 0
        for row in await _in_status(ctx, campaign_id, SendStatus.SENDING, now - lease_ms, 500):
            if (row["_id"], row.get("claimedAt")) in alive:
                continue
            if (row["_id"], row.get("claimedAt")) in back:
                await _requeue(ctx, row, {"dueInMs": 0.0}, now)
                requeued += 1
            elif not sends.reclaimable(row, row.get("routeProviders") or [], now):
                stalled.append(row)
        stats = await stats_of(ctx, campaign_id)
        job = await job_of(ctx, campaign_id)
        if stats is None or job is None:
            continue
        if stalled:
            stats = await _end_stalled(ctx, campaign_id, stalled, now, ended)
        if await complete_if_finished(ctx, campaign, job, stats, now):
            continue
        last = max(stats["updatedAt"], job["updatedAt"])
        idle = now - last >= idle_ms
        if requeued or ((pending(job, stats) > 0 or job["phase"] == "walking") and idle):
            await ctx.db.patch(stats["_id"], {"updatedAt": now})
            await spawn_workers(ctx, campaign_id)
        if job["phase"] == "walking" and now - job["updatedAt"] >= max(idle_ms, IDLE_MS):
            await schedule_hop(ctx, campaign_id, job["hop"])  # its hop failed: again
    return len(campaigns)
