"""The one send path: every message Owlat sends to an organization's recipients (the
transactional API, automation steps, test sends) is a `transactionalSends` row moved
through `send_states` by this module; so is every system mail, the instance's own
(`lib/mailer.py`: sign-up, password reset, invitations), a row of kind `system`
without an organization: From the instance's sender, through the local outbox, no
suppression, no sending-domain check, no queue job (its sender delivers it at once with
`deliver_sends`; recovery as below).

    send_id = await enqueue_send(ctx, SendRequest(...))      in the caller's mutation
        Checks the request and the From domain (below), records the row `queued` with a
        random delivery key and the Message-ID derived from it, and makes sure the
        organization's delivery job will run (`sendQueues`: one job per organization
        at a time, not one per send) in the same transaction: row and delivery commit or
        roll back together. An `idempotency_key` the organization already used answers
        that send's id and sends nothing.

    transactionalSends:deliverQueue(organizationId)          internal action
        Takes up to `QUEUE_BATCH` queued sends of the organization at a time and delivers
        them as below; the claim that finds no queued send left releases the queue (the
        next enqueued send schedules a new job), in the transaction that looked.
    transactionalSends:deliver(sendIds)                      internal action (recovery)
        Loads the route of each send's kind and its providers once, then per group of
        sends (organization and kind):
        attachments: stored files read, URLs fetched (`attachments.py`), before the claim;
          one that cannot be had fails the send (ATTACHMENT_UNAVAILABLE) once claimed.
        claim (one mutation for the group): suppression (`suppression.py`) and the From
          domain again, since a block or a lost verification since enqueueing still holds:
          refused → `failed` with its code; else `sending`, `claimedAt`, `attempts + 1`
          and the route's providers. This commits BEFORE any provider is called. The
          claim answers the bodies: the send's own (`sendBodies`), or the shared rendering
          it names (once per claim) with its variables and footer links
          (`send_contents.py`), personalized where the message is composed.
        compose: the bodies personalized (a send of a content), the MIME message with the
          row's Message-ID, DKIM-signed with the key Owlat holds for the From domain, if
          any (the claim's messages at once, in the signing processes: `prepare_all`).
        deliver: `email_providers.dispatch` (route choice, health, retries of RATE_LIMIT and
          SERVER_ERROR) with the delivery key as the provider's idempotency key.
        record (mutation): `sent` (provider, its message id) or `failed` (the error kind as
          `errorCode`, its message), and each attempt into the providers' health; the
          outcomes that end while one record commits go together into the next, and the
          first waits up to `RECORD_GATHER` for the rest of its claim.
    A send that ends (`sent` or `failed`) deletes the files its request stored
    (`attachmentStorageIds`); a template's own attachments stay.

The From domain: its exact domain must be a verified sending domain of the organization
(`domains.sender_check`), unless every provider of the route is the local outbox.

At most once. A crash, or any error nobody classified, between claim and record leaves
the row `sending`; `recover_stalled` (a cron, and once at every start) looks at rows left
so for the lease (OWLAT_SEND_LEASE_SECONDS, 15 minutes):
- when every provider of the claim's route dedupes by key (the outbox, Resend), the row is
  claimed again and sent again with the same delivery key and Message-ID: the provider
  answers with the first send (the outbox finds its file, Resend its key for 24 hours:
  only a send queued less than 23 hours ago is sent again so, `reclaimable`), so the
  recipient gets it once;
- otherwise (SMTP, SES: no idempotency key), when the claim's attempt journal (`claimedBy`,
  `journal.py`: the delivering process writes the claim there right before a provider is
  handed the message, and for SMTP right before MAIL and before the end of DATA) is known
  here and shows no attempt, or an SMTP transaction that never ended its DATA (the relay
  discards it), it goes back to `queued` and is sent once (`recover`, the action that
  reads the journals, passes these to `recover_stalled`); one whose end of DATA was
  written is `sent`, DELIVERY_UNCONFIRMED (the relay most likely took it, `journal.py`);
- otherwise it becomes `failed` with DELIVERY_UNCERTAIN: the relay may have accepted it
  before the crash, and receivers do not dedupe by Message-ID, so sending it again could
  deliver it twice. Owlat never does;
- after `MAX_ATTEMPTS` claims, `failed` as well.
A delivery renews the lease of the sends it works on every lease/3 (`leases.py`), so a
slow one is not taken for a crash; a send past its lease whose journal's writer is alive
here is left for a later look (`journal.held`).
Rows left `queued` as long (their delivery job was lost) are scheduled again, and a queue
whose job ended without releasing it (a crash) gets a new job.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import math
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from owlat.app.lib import instance
from owlat.app.lib.audience import clean_email, organization_rows, organization_settings
from owlat.app.lib.domains.sender_check import ensure_sender_allowed, is_local_sink
from owlat.app.lib.email_providers.configured import dkim_signer, kept_provider
from owlat.app.lib.email_providers.credentials import CredentialsError
from owlat.app.lib.email_providers.dispatch import RETRY_DELAYS, deliver
from owlat.app.lib.email_providers.routing import Health, MessageType, NoDeliveryProvider, Route
from owlat.app.lib.email_providers.types import (
    Attachment,
    EmailMessage,
    EmailProvider,
    ProviderError,
    SendResult,
)
from owlat.app.lib.errors import AppError, invalid
from owlat.app.lib.rendering.text import html_to_text
from owlat.app.lib.sending import journal, leases
from owlat.app.lib.sending.attachments import MAX_ATTACHMENTS, AttachmentError, load
from owlat.app.lib.sending.composition import (
    Composer,
    CompositionError,
    SendKind,
    check_headers,
    format_address,
    kind_headers,
    mailbox,
    message_id_for,
    prepare,
    tagged_test_subject,
)
from owlat.app.lib.sending.dkim import DkimSigner
from owlat.app.lib.sending.pooled_composition import Composed, Item, compose_all, key_of
from owlat.app.lib.sending.routes import (
    Attempt,
    default_route,
    enabled_providers,
    health_rows,
    is_idempotent,
    provider_row,
    record_attempts,
    restored_health,
    route_document,
    route_for,
    route_from_document,
    takes_fields,
)
from owlat.app.lib.sending.send_contents import body_of, content_of, personalized
from owlat.app.lib.sending.send_states import Outcome, SendStatus, transition
from owlat.app.lib.sending.suppression import suppressed
from owlat.app.lib.sending.transactional_counts import (
    count_outcome,
    count_outcomes,
    count_queued,
)
from owlat.app.lib.session_organization import now_ms
from owlat.app.lib.tracking.links import tracked
from owlat.app.lib.tracking.policy import tracking_for
from owlat.runtime import UNDEFINED, ActionCtx, MutationCtx, QueryCtx, internal

MAX_ATTEMPTS = 3
MAX_RETRY_WAIT = 60.0  # seconds: a provider's longer Retry-After is not waited for
MAX_SUBJECT = 1000
MAX_KEY = 256
MAX_CONTENT = 800_000  # characters of HTML + text (a document holds at most 1 MiB)
CONCURRENCY = 8  # sends of one delivery job in flight at once
BATCH = 50  # sends per delivery job scheduled by `recover_stalled`
# Queued sends claimed at a time: a larger claim holds the SQLite writer longer, and the
# API's requests wait behind it (bench_transactional at 150 req/s: 100 → p50 123 ms,
# 20 → 21 ms).
QUEUE_BATCH = 20
RECORD_GATHER = 0.01  # seconds an outcome waits for its claim's others (`_Records`)
LIVE_JOB = ("pending", "inProgress")
DEFAULT_FROM_EMAIL = "no-reply@owlat.local"  # the outbox's sender when none is set


@dataclasses.dataclass(frozen=True)
class SendRequest:
    """One message to one recipient. `text` empty: derived from `html`. From: the given
    address, else the organization's default sender (settings), else `DEFAULT_FROM_EMAIL`.
    `unsubscribe_url`, `list_id`, `feedback_id`: the kind's headers (`kind_headers`)."""

    organization_id: str | None  # None: a system mail (module docstring)
    kind: SendKind
    to: str
    subject: str
    text: str = ""
    html: str | None = None
    from_email: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    contact_id: str | None = None
    idempotency_key: str | None = None
    unsubscribe_url: str | None = None
    list_id: str | None = None
    feedback_id: str | None = None
    transactional_email_id: str | None = None
    automation_id: str | None = None
    language: str | None = None
    data_variables: Mapping[str, Any] | None = None
    created_by: str | None = None
    # `{filename, contentType?, storageId | url, size?}`, checked by the caller
    # (`attachments.py`); `owned_storage_ids`: the files of these that this send owns
    # (deleted once it is sent or failed)
    attachments: Sequence[Mapping[str, Any]] = ()
    owned_storage_ids: Sequence[str] = ()
    # what providers dedupe by (and the Message-ID is made of); None: a random one. A
    # system mail's sender fixes it, so a repeated mail is written to the outbox once.
    delivery_key: str | None = None
    # instead of `html` and `text`: a `sendContents` row, personalized at delivery with
    # `data_variables` and followed by the footer of `footer_links` (send_contents.py)
    content_id: str | None = None
    footer_links: Mapping[str, str] | None = None


def lease_ms() -> float:
    """How long a claimed or queued send is left alone before recovery takes it over."""
    return instance.current().send_lease_ms


# -- enqueue ---------------------------------------------------------------------------------


async def enqueue_send(
    ctx: MutationCtx, request: SendRequest, *, from_address: str | None = None
) -> str:
    """Record `request` as a `queued` send and schedule its delivery (module docstring);
    its id. Refusals are `AppError`s naming the field and what to do. `from_address`:
    what `checked_sender(ctx, request)` answered in this transaction, when the caller
    asked already (it is not asked again)."""
    organization_id = request.organization_id
    key = request.idempotency_key
    if key is not None:
        if not 1 <= len(key) <= MAX_KEY:
            raise invalid(
                "INVALID_IDEMPOTENCY_KEY", f"Idempotency key must be 1 to {MAX_KEY} characters"
            )
        if organization_id is None:
            raise invalid("INVALID_IDEMPOTENCY_KEY", "A system mail takes no idempotency key")
        existing = await by_idempotency_key(ctx, organization_id, key)
        if existing is not None:
            return str(existing["_id"])
    to = clean_email(request.to)
    if from_address is None:
        from_address = await checked_sender(ctx, request)
    subject = " ".join(request.subject.split())
    if not subject or len(subject) > MAX_SUBJECT:
        raise invalid("INVALID_SUBJECT", f"Subject must be 1 to {MAX_SUBJECT} characters")
    if request.kind is SendKind.TEST and not subject.startswith(tagged_test_subject("")):
        subject = tagged_test_subject(subject)
    text = "" if request.content_id is not None else _checked_text(request)
    reply_to = None if request.reply_to is None else clean_email(request.reply_to)
    if len(request.attachments) > MAX_ATTACHMENTS:
        raise invalid("TOO_MANY_ATTACHMENTS", f"At most {MAX_ATTACHMENTS} attachments")
    delivery_key = request.delivery_key or secrets.token_hex(16)
    try:
        headers = kind_headers(
            request.kind,
            unsubscribe_url=request.unsubscribe_url,
            list_id=request.list_id,
            feedback_id=request.feedback_id,
        )
        message = EmailMessage(
            to=to,
            subject=subject,
            text=text,
            html=request.html,
            from_address=from_address,
            idempotency_key=delivery_key,
            headers=headers,
            reply_to=reply_to,
        )
        check_headers(message)
    except CompositionError as error:
        raise invalid("INVALID_MESSAGE", f"The message cannot be sent: {error}") from None
    now = now_ms()
    # a system mail's row and body have no organization (module docstring)
    owner = {} if organization_id is None else {"organizationId": organization_id}
    row: dict[str, Any] = {
        **owner,
        "kind": str(request.kind),
        "email": to,
        "fromAddress": from_address,
        "subject": subject,
        **await _bodies(ctx, request, owner, text),
        "headers": headers,
        "deliveryKey": delivery_key,
        "messageId": message_id_for(message),
        "status": str(SendStatus.QUEUED),
        "attempts": 0,
        "queuedAt": now,
        "updatedAt": now,
    }
    optional = {
        "replyTo": reply_to,
        "contactId": request.contact_id,
        "idempotencyKey": key,
        "transactionalEmailId": request.transactional_email_id,
        "automationId": request.automation_id,
        "language": request.language,
        "createdBy": request.created_by,
        "attachments": [dict(item) for item in request.attachments] or None,
        "attachmentStorageIds": list(request.owned_storage_ids) or None,
    }
    row.update({name: value for name, value in optional.items() if value is not None})
    send_id = await ctx.db.insert("transactionalSends", row)
    await count_queued(ctx, str(send_id), row)
    if organization_id is not None:
        await arm_queue(ctx, organization_id, now)
    return str(send_id)


def _checked_text(request: SendRequest) -> str:
    """The text body of a send with its own bodies (derived from the HTML when empty)."""
    text = request.text or html_to_text(request.html or "")
    if not text.strip() and not request.html:
        raise invalid("INVALID_CONTENT", "A message needs a text or an HTML body")
    if len(text) + len(request.html or "") > MAX_CONTENT:
        raise invalid(
            "MESSAGE_TOO_LARGE", f"HTML and text together exceed {MAX_CONTENT:,} characters"
        )
    return text


async def _bodies(
    ctx: MutationCtx, request: SendRequest, owner: dict[str, Any], text: str
) -> dict[str, Any]:
    """The row's fields naming its bodies: its `sendBodies` row, or its shared content
    with what personalizes it (`send_contents.py`)."""
    variables = None if request.data_variables is None else dict(request.data_variables)
    if request.content_id is not None:
        named = {"contentId": request.content_id, "dataVariables": variables}
        if request.footer_links is not None:
            named["footerLinks"] = dict(request.footer_links)
        return {name: value for name, value in named.items() if value is not None}
    body: dict[str, Any] = {**owner, "text": text}
    if request.html is not None:
        body["html"] = request.html
    if variables is not None:
        body["dataVariables"] = variables
    return {"bodyId": await ctx.db.insert("sendBodies", body)}


async def arm_queue(ctx: MutationCtx, organization_id: str, now: float) -> None:
    """Make sure a delivery job of the organization will look for its queued sends: the
    queue's job when it is still to run or running, else a new one."""
    queue = await _queue(ctx, organization_id)
    if queue is not None:
        job = await ctx.db.system.get(queue["jobId"])
        if job is not None and job["state"]["kind"] in LIVE_JOB:
            return
    job_id = await ctx.scheduler.run_after(
        0, internal.transactional_sends.deliver_queue, {"organizationId": organization_id}
    )
    if queue is None:
        await ctx.db.insert(
            "sendQueues", {"organizationId": organization_id, "jobId": job_id, "armedAt": now}
        )
    else:
        await ctx.db.patch(queue["_id"], {"jobId": job_id, "armedAt": now})


async def _queue(ctx: QueryCtx, organization_id: str) -> dict[str, Any] | None:
    found = (
        await ctx.db.query("sendQueues")
        .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
        .first()
    )
    return None if found is None else dict(found)


async def _queued(ctx: QueryCtx, organization_id: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` of the organization's queued sends, oldest first."""
    return await (
        ctx.db.query("transactionalSends")
        .with_index(
            "by_org_status",
            lambda q: q.eq("organizationId", organization_id).eq("status", str(SendStatus.QUEUED)),
        )
        .take(limit)
    )


async def by_idempotency_key(
    ctx: QueryCtx, organization_id: str, key: str
) -> dict[str, Any] | None:
    found = (
        await ctx.db.query("transactionalSends")
        .with_index(
            "by_org_key",
            lambda q: q.eq("organizationId", organization_id).eq("idempotencyKey", key),
        )
        .first()
    )
    return None if found is None else dict(found)


async def checked_sender(ctx: QueryCtx, request: SendRequest) -> str:
    """The From address of `request`, refused as `enqueue_send` refuses it (not an address;
    a domain that is not a verified sending domain, unless its kind's route is a local sink)."""
    from_address = await _from_address(ctx, request)
    if request.organization_id is None:
        return from_address  # a system mail: through the outbox only
    route = await route_for(ctx, request.organization_id, MessageType(request.kind))
    await check_sender(ctx, request.organization_id, from_address, enabled_providers(route))
    return from_address


async def _from_address(ctx: QueryCtx, request: SendRequest) -> str:
    organization_id = request.organization_id
    settings = {} if organization_id is None else await organization_settings(ctx, organization_id)
    settings = settings or {}
    email = request.from_email or settings.get("defaultFromEmail") or DEFAULT_FROM_EMAIL
    name = request.from_name if request.from_email else settings.get("defaultFromName")
    try:
        address = mailbox(format_address(name or "", email.strip()), "From")
    except CompositionError as error:
        raise invalid("INVALID_SENDER", str(error)) from None
    return str(address)


async def check_sender(
    ctx: QueryCtx,
    organization_id: str,
    from_address: str,
    providers: Sequence[str],
    domains: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """Refuse a From address whose exact domain is not a verified sending domain of the
    organization, unless every provider of the route is a local sink (the outbox; under
    `owlat dev`, an SMTP relay on a loopback host: `sender_check.is_local_sink`).
    `domains`: the organization's `domains` rows, when the caller read them already."""
    development = instance.current().development
    outside = []
    for provider in providers:
        row = await provider_row(ctx, organization_id, provider) if development else None
        settings = None if row is None else row["settings"]
        if not is_local_sink(provider, settings, development):
            outside.append(provider)
    if not outside:
        return
    if domains is None:
        domains = await organization_rows(ctx, "domains", organization_id)
    ensure_sender_allowed(from_address, domains, outside[0])


# -- claim and record (the delivery's mutations) ---------------------------------------------


async def claim(
    ctx: MutationCtx,
    send_id: str,
    route_providers: Sequence[str],
    now: float,
    lease_ms: float,
    reads: ClaimReads | None = None,
    journal_name: str | None = None,
) -> dict[str, Any] | None:
    """Move a send to `sending` before its provider call; what to send, or None when
    there is nothing to send (refused: recorded `failed`; claimed or finished already).
    `reads`: what the claims of a batch share, read once for them all;
    `journal_name`: the claiming process's attempt journal (`claimedBy`, `journal.py`)."""
    row = await ctx.db.get(send_id)
    if row is None:
        return None
    reads = ClaimReads() if reads is None else reads
    own_domains = await reads.domains(ctx, row.get("organizationId"))
    status = SendStatus(row["status"])
    if status is SendStatus.SENDING:
        if now - (row.get("claimedAt") or 0) < lease_ms:
            return None  # another delivery holds it
        if not reclaimable(row, route_providers, now):
            await _fail(ctx, row, "DELIVERY_UNCERTAIN", UNCERTAIN, now)
            return None
    elif status is not SendStatus.QUEUED:
        return None
    refusal = await _refusal(ctx, row, route_providers, own_domains)
    if refusal is not None:
        await _fail(ctx, row, *refusal, now)
        return None
    await ctx.db.patch(
        row["_id"],
        {
            "status": str(SendStatus.SENDING),
            "claimedAt": now,
            "claimedBy": journal_name or UNDEFINED,
            "attempts": row["attempts"] + 1,
            "routeProviders": list(route_providers),
            "updatedAt": now,
        },
    )
    fields = ("email", "fromAddress", "replyTo", "subject", "headers")
    claimed = {name: row.get(name) for name in fields}
    if row.get("contentId") is None:
        claimed.update(await send_body(ctx, row))
    else:  # personalized where it is composed (`compose_claimed`), its content read here
        claimed.update({name: row.get(name) for name in _PERSONAL})
    claimed.update(sendId=row["_id"], deliveryKey=row["deliveryKey"], messageId=row["messageId"])
    claimed["claimedAt"] = now
    claimed["dkim"] = dkim_key(row, own_domains)
    claimed["tracking"] = await reads.tracking(ctx, row)
    return claimed


@dataclasses.dataclass
class ClaimReads:
    """What the sends of one claim share, read once for them all (the same rows a claim
    of one send reads): each organization's `domains` rows, the tracking of each
    organization's sends of a kind (`tracking_for`)."""

    _domains: dict[str | None, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    _tracking: dict[tuple[str | None, str], dict[str, Any] | None] = dataclasses.field(
        default_factory=dict
    )

    async def domains(self, ctx: QueryCtx, organization_id: str | None) -> list[dict[str, Any]]:
        if organization_id not in self._domains:
            self._domains[organization_id] = (
                []
                if organization_id is None
                else await organization_rows(ctx, "domains", organization_id)
            )
        return self._domains[organization_id]

    async def tracking(self, ctx: QueryCtx, row: Mapping[str, Any]) -> dict[str, Any] | None:
        key = (row.get("organizationId"), row["kind"])
        if key not in self._tracking:
            self._tracking[key] = await tracking_for(ctx, row)
        return self._tracking[key]


async def claim_many(
    ctx: MutationCtx,
    send_ids: Sequence[str],
    route_providers: Sequence[str],
    now: float,
    lease_ms: float,
    release_queue: str | None = None,
    journal_name: str | None = None,
) -> dict[str, Any]:
    """`claim` each send: `{claimed: [what to send], contents, more}`; `contents`: the
    content rows the claimed sends name, by id, once each (what `compose_claimed`
    personalizes them with). With `release_queue` (an organization id): `more` tells
    whether sends of it are still queued; when none is, its queue is released in this
    transaction."""
    claimed = []
    contents: dict[str, dict[str, Any]] = {}
    reads = ClaimReads()
    for send_id in send_ids:
        found = await claim(ctx, send_id, route_providers, now, lease_ms, reads, journal_name)
        if found is not None:
            claimed.append(found)
            content_id = found.get("contentId")
            if content_id is not None and content_id not in contents:
                contents[content_id] = await content_of(ctx, content_id)
    more = False
    if release_queue is not None:
        more = bool(await _queued(ctx, release_queue, 1))
        queue = None if more else await _queue(ctx, release_queue)
        if queue is not None:
            await ctx.db.delete(queue["_id"])
    return {"claimed": claimed, "contents": contents, "more": more}


async def send_body(ctx: QueryCtx, row: Mapping[str, Any]) -> dict[str, Any]:
    """The send's `html`, `text` and `dataVariables` (None when it has none): its own, or
    its shared content personalized (`send_contents.py`)."""
    if row.get("contentId") is not None:
        variables = row.get("dataVariables")
        body = await body_of(ctx, row["contentId"], variables or {}, row.get("footerLinks"))
        return {**body, "dataVariables": variables}
    source = row if row.get("bodyId") is None else await ctx.db.get(row["bodyId"]) or {}
    return {name: source.get(name) for name in ("html", "text", "dataVariables")}


# Resend answers a repeated Idempotency-Key with its first answer for 24 hours, then
# takes it as new: a send is claimed again with its key only while its key's first use
# (after `queuedAt`) is surely within them (an hour's margin). The outbox keeps its file.
KEY_WINDOWS_MS = {"resend": 23 * 3_600_000.0}


def reclaimable(row: Mapping[str, Any], route_providers: Sequence[str], now: float) -> bool:
    """Whether a send left `sending` past its lease may be sent again with its delivery
    key through `route_providers`: every provider of its earlier claim dedupes the key,
    the new ones are among them, and it was queued within each one's `KEY_WINDOWS_MS`."""
    earlier = row.get("routeProviders") or []
    if not (is_idempotent(earlier) and set(route_providers) <= set(earlier)):
        return False
    age = now - row["queuedAt"]
    return all(age < KEY_WINDOWS_MS.get(provider, math.inf) for provider in earlier)


_PERSONAL = ("contentId", "dataVariables", "footerLinks")  # what personalizes a content
UNCERTAIN = (
    "Delivery was interrupted after the message was handed to a provider that cannot "
    "tell whether it already took it; it is not sent again, so it is never sent twice"
)


async def _refusal(
    ctx: QueryCtx,
    row: Mapping[str, Any],
    route_providers: Sequence[str],
    domains: Sequence[Mapping[str, Any]],
) -> tuple[str, str] | None:
    """(code, message) of why the send must not go out now, or None."""
    kind = SendKind(row["kind"])
    organization_id = row.get("organizationId")
    if organization_id is not None:  # a system mail: neither (module docstring)
        reason = await suppressed(ctx, organization_id, kind, row["email"], row.get("contactId"))
        if reason is not None:
            return "RECIPIENT_SUPPRESSED", reason
        try:
            await check_sender(ctx, organization_id, row["fromAddress"], route_providers, domains)
        except AppError as error:
            return error.error_code, str(error.data)
    if row["attempts"] >= MAX_ATTEMPTS:
        return "TOO_MANY_ATTEMPTS", _interrupted(row["attempts"])
    return None


def dkim_key(row: Mapping[str, Any], domains: Sequence[Mapping[str, Any]]) -> dict[str, str] | None:
    """The From domain's DKIM key Owlat holds (sealed), if any, among the organization's
    `domains` rows."""
    domain = str(mailbox(row["fromAddress"], "From").domain).lower()
    found = next((item for item in domains if item["domain"] == domain), None)
    if found is None or not found.get("dkimPrivateKey"):
        return None
    return {
        "domain": domain,
        "selector": found["dkimSelector"],
        "privateKey": found["dkimPrivateKey"],
    }


def _interrupted(attempts: int) -> str:
    return f"Delivery was interrupted {attempts} times"


async def _fail(
    ctx: MutationCtx,
    row: Mapping[str, Any],
    code: str,
    message: str,
    now: float,
    counted: list[tuple[Mapping[str, Any], str]] | None = None,
) -> None:
    """A send that did not go out: `failed` (only from `queued` or `sending`: `sent →
    failed` is a provider's later refusal, never a delivery's own outcome); its count
    moved now, or added to `counted` (`record`'s, moved together at its end)."""
    current = SendStatus(row["status"])
    if current in (SendStatus.QUEUED, SendStatus.SENDING):
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
        if counted is None:
            await count_outcome(ctx, row, "failed")
        else:
            counted.append((row, "failed"))
        await _release_files(ctx, row)


async def _release_files(ctx: MutationCtx, row: Mapping[str, Any]) -> None:
    """Delete the files the send's request stored (the send has ended)."""
    for storage_id in row.get("attachmentStorageIds") or ():
        if await ctx.db.system.get(storage_id) is not None:
            await ctx.storage.delete(storage_id)


async def record(ctx: MutationCtx, records: Sequence[Mapping[str, Any]], now: float) -> None:
    """Record deliveries' outcomes, each `{sendId, outcome, attempts}`: outcome `{status:
    sent, provider, providerMessageId}` or `{status: failed, errorCode, errorMessage}`;
    the attempts (`Attempt`s) go into provider health, in order."""
    attempts: dict[str | None, list[Attempt]] = {}
    counted: list[tuple[Mapping[str, Any], str]] = []
    for item in records:
        row = await ctx.db.get(item["sendId"])
        if row is None:
            continue
        attempts.setdefault(row.get("organizationId"), []).extend(item["attempts"])
        await _record_outcome(ctx, row, item["outcome"], now, counted)
    await count_outcomes(ctx, counted)
    for organization_id, made in attempts.items():
        if made and organization_id is not None:
            await record_attempts(ctx, organization_id, made, now)


async def _record_outcome(
    ctx: MutationCtx,
    row: Mapping[str, Any],
    outcome: Mapping[str, Any],
    now: float,
    counted: list[tuple[Mapping[str, Any], str]],
) -> None:
    if outcome["status"] == "failed":
        await _fail(ctx, row, outcome["errorCode"], outcome["errorMessage"], now, counted)
        return
    if transition(SendStatus(row["status"]), SendStatus.SENT) is Outcome.APPLY:
        await ctx.db.patch(row["_id"], sent_changes(outcome, now))
        counted.append((row, "sent"))
        await _release_files(ctx, row)


UNCONFIRMED = (
    "Delivery was interrupted after the end of the message was written to the SMTP "
    "relay, before the relay's answer was recorded: the relay most likely took it; it is "
    "counted as sent and not sent again"
)


def sent_changes(outcome: Mapping[str, Any], now: float) -> dict[str, Any]:
    """A send's changes when it is `sent` through `outcome` (`{provider,
    providerMessageId}`, and `errorCode`/`errorMessage` when it was not confirmed)."""
    return {
        "status": str(SendStatus.SENT),
        "sentAt": now,
        "providerType": outcome["provider"],
        "providerMessageId": outcome["providerMessageId"],
        "errorCode": outcome.get("errorCode", UNDEFINED),
        "errorMessage": outcome.get("errorMessage", UNDEFINED),
        "updatedAt": now,
    }


def unconfirmed(row: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome of a send whose SMTP transaction a crash left after its end of DATA
    (`journal.py`: ENDED): sent through SMTP (the only provider that ends a DATA), with
    its own Message-ID, DELIVERY_UNCONFIRMED."""
    return {
        "status": "sent",
        "provider": "smtp",
        "providerMessageId": row["messageId"],
        "errorCode": "DELIVERY_UNCONFIRMED",
        "errorMessage": UNCONFIRMED,
    }


async def stalled(ctx: QueryCtx, now: float, lease_ms: float, limit: int = 200) -> list[Any]:
    """Sends left `sending` for `lease_ms` through providers that do not dedupe, whose
    claim names an attempt journal: `{sendId, claimedAt, claimedBy}` (what
    `journal.unattempted` reads)."""
    return [
        {"sendId": row["_id"], "claimedAt": row["claimedAt"], "claimedBy": row["claimedBy"]}
        for row in await _left_since(ctx, SendStatus.SENDING, now - lease_ms, limit)
        if row.get("claimedBy") and not is_idempotent(row.get("routeProviders") or [])
    ]


async def recover_stalled(
    ctx: MutationCtx,
    now: float,
    lease_ms: float,
    limit: int = 200,
    unattempted: Sequence[Mapping[str, Any]] = (),
    held: Sequence[Mapping[str, Any]] = (),
    ended: Sequence[Mapping[str, Any]] = (),
) -> int:
    """Re-drive sends left `queued` or `sending` for `lease_ms` (module docstring); the
    `unattempted` ones (`{sendId, claimedAt}`: their claim's journal shows no attempt,
    or an SMTP transaction that never ended its DATA, `journal.verdicts`) go back to
    `queued` with their claim undone, and are sent again; the `ended` ones (the end of
    DATA was written) are `sent`, DELIVERY_UNCONFIRMED; the `held` ones (a live writer
    may still deliver them, `journal.held`) are left alone; how many rows were handled."""
    back = {(item["sendId"], item["claimedAt"]) for item in unattempted}
    done = {(item["sendId"], item["claimedAt"]) for item in ended}
    alive = {(item["sendId"], item["claimedAt"]) for item in held}
    redo: list[str] = []
    counted: list[tuple[Mapping[str, Any], str]] = []
    handled = 0
    for status in (SendStatus.QUEUED, SendStatus.SENDING):
        for row in await _left_since(ctx, status, now - lease_ms, limit):
            if status is SendStatus.SENDING and (row["_id"], row.get("claimedAt")) in alive:
                continue
            handled += 1
            if (row["_id"], row.get("claimedAt")) in back:
                changes = {"status": str(SendStatus.QUEUED), "attempts": row["attempts"] - 1}
                await ctx.db.patch(row["_id"], {**changes, "updatedAt": now})
                redo.append(row["_id"])
                continue
            if status is SendStatus.SENDING and (row["_id"], row.get("claimedAt")) in done:
                await _record_outcome(ctx, row, unconfirmed(row), now, counted)
                continue
            resendable = status is SendStatus.QUEUED or (
                reclaimable(row, row.get("routeProviders") or [], now)
                and row["attempts"] < MAX_ATTEMPTS
            )
            if resendable:
                await ctx.db.patch(row["_id"], {"updatedAt": now})
                redo.append(row["_id"])
            elif row["attempts"] >= MAX_ATTEMPTS:
                await _fail(ctx, row, "TOO_MANY_ATTEMPTS", _interrupted(row["attempts"]), now)
            else:
                await _fail(ctx, row, "DELIVERY_UNCERTAIN", UNCERTAIN, now)
    await count_outcomes(ctx, counted)
    for start in range(0, len(redo), BATCH):
        await ctx.scheduler.run_after(
            0,
            internal.transactional_sends.deliver,
            {"sendIds": redo[start : start + BATCH], "leaseMs": lease_ms},
        )
    for queue in await ctx.db.query("sendQueues").take(limit):
        job = await ctx.db.system.get(queue["jobId"])
        if job is None or job["state"]["kind"] not in LIVE_JOB:  # ended without releasing
            if await _queued(ctx, queue["organizationId"], 1):
                await arm_queue(ctx, queue["organizationId"], now)
            else:
                await ctx.db.delete(queue["_id"])
    return handled


async def _left_since(
    ctx: QueryCtx, status: SendStatus, before: float, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` sends in `status` last updated at or before `before`."""
    return await (
        ctx.db.query("transactionalSends")
        .with_index(
            "by_status_updated",
            lambda q: q.eq("status", str(status)).lte("updatedAt", before),
        )
        .take(limit)
    )


# -- the delivery action ---------------------------------------------------------------------


async def plan(
    ctx: QueryCtx, send_ids: Sequence[str] = (), organization_id: str | None = None
) -> list[dict[str, Any]]:
    """The sends `send_ids`, or up to `QUEUE_BATCH` queued sends of `organization_id`,
    grouped by organization and kind, each group with its route, the sealed settings of
    its providers and their health (read by the delivery action)."""
    if organization_id is not None:
        rows = await _queued(ctx, organization_id, QUEUE_BATCH)
    else:
        rows = [row for row in [await ctx.db.get(send_id) for send_id in send_ids] if row]
    groups: dict[tuple[str | None, str], dict[str, Any]] = {}
    for row in rows:
        key = (row.get("organizationId"), row["kind"])
        if key not in groups:
            groups[key] = await route_plan(ctx, *key)
        groups[key]["sendIds"].append(row["_id"])
        if row.get("attachments"):
            groups[key]["attachments"][row["_id"]] = row["attachments"]
    return list(groups.values())


async def route_plan(ctx: QueryCtx, organization_id: str | None, kind: str) -> dict[str, Any]:
    """The route of `kind`, the sealed settings of its providers and their health (a
    system mail's: the outbox)."""
    plan: dict[str, Any] = {
        "organizationId": organization_id,
        "kind": kind,
        "sendIds": [],
        "attachments": {},  # sendId -> its attachments (sends that have some)
    }
    if organization_id is None:
        outbox = route_document(default_route([]))
        return {**plan, "route": outbox, "providers": {"outbox": {"settings": {}}}, "health": []}
    route = await route_for(ctx, organization_id, MessageType(kind))
    providers: dict[str, Any] = {}
    for provider in enabled_providers(route):
        if provider == "outbox":
            providers[provider] = {"settings": {}}
            continue
        row = await provider_row(ctx, organization_id, provider)
        if row is not None:
            providers[provider] = {"settings": row["settings"], "credentials": row["credentials"]}
    return {
        **plan,
        "route": route_document(route),
        "providers": providers,
        "health": list((await health_rows(ctx, organization_id)).values()),
    }


class _Recorded:
    """A provider whose calls are written down as `Attempt`s (for provider health), and
    whose messages' `on_attempt` is called right before the call (a provider that calls it
    itself, closer to the wire, says so: `calls_on_attempt`, the SMTP pool)."""

    def __init__(self, name: str, provider: EmailProvider, attempts: list[Attempt]) -> None:
        self._name, self._provider, self._attempts = name, provider, attempts

    async def send(self, message: EmailMessage) -> SendResult:
        if message.on_attempt is not None and not getattr(
            self._provider, "calls_on_attempt", False
        ):
            message.on_attempt("handed")
        try:
            result = await self._provider.send(message)
        except ProviderError as error:
            self._attempts.append(Attempt(self._name, error.kind, error.message))
            raise
        self._attempts.append(Attempt(self._name))
        return result


async def deliver_sends(ctx: ActionCtx, send_ids: Sequence[str], lease_ms: float) -> None:
    """The delivery action's work (module docstring): every send of `send_ids`."""
    groups = await ctx.run_query(internal.transactional_sends.plan, {"sendIds": list(send_ids)})
    async with _renewal(ctx, lease_ms) as renewal:
        for group in groups:
            await _deliver_group(ctx, group, lease_ms, renewal)


async def deliver_queue(ctx: ActionCtx, organization_id: str, lease_ms: float) -> None:
    """The queue's delivery job (module docstring): the organization's queued sends, a
    batch at a time, until a claim finds none left and releases the queue."""
    more = True
    async with _renewal(ctx, lease_ms) as renewal:
        while more:
            groups = await ctx.run_query(
                internal.transactional_sends.plan, {"organizationId": organization_id}
            )
            if not groups:
                claimed = await ctx.run_mutation(
                    internal.transactional_sends.claim,
                    {"sendIds": [], "routeProviders": [], "leaseMs": lease_ms,
                     "releaseQueue": organization_id},
                )  # fmt: skip
                more = claimed["more"]
            for index, group in enumerate(groups):
                release = organization_id if index == len(groups) - 1 else None
                more = await _deliver_group(ctx, group, lease_ms, renewal, release)


def _renewal(ctx: ActionCtx, lease_ms: float) -> leases.Renewal:
    """The lease renewal of a delivery action's claims (`leases.py`)."""
    attempts_journal = journal.opened(instance.current().data_dir)
    return leases.Renewal(ctx, internal.transactional_sends.renew, lease_ms, attempts_journal)


class _Records:
    """Delivery outcomes recorded as they come: one `record` mutation at a time, each
    taking every outcome that arrived while the one before it committed; the first waits
    up to `RECORD_GATHER` seconds for the claim's other sends still in flight (`expected`
    outcomes in all), so sends that end together are recorded together."""

    def __init__(self, ctx: ActionCtx, expected: int) -> None:
        self._ctx = ctx
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._failure: Exception | None = None
        self._left = expected
        self._all_in = asyncio.Event()

    def add(self, send_id: str, outcome: dict[str, Any], attempts: Sequence[Attempt]) -> None:
        item = {"sendId": send_id, "outcome": outcome, "attempts": [a.to_json() for a in attempts]}
        self._pending.append(item)
        self._left -= 1
        if self._left <= 0:
            self._all_in.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_in.wait(), RECORD_GATHER)
        while self._pending:
            records, self._pending = self._pending, []
            try:
                await self._ctx.run_mutation(
                    internal.transactional_sends.record, {"records": records}
                )
            except Exception as error:  # its sends stay `sending`: recover_stalled ends them
                self._failure = self._failure or error

    async def wait(self) -> None:
        """Until every outcome added is recorded; then the first failed `record` is raised
        (a failure is never lost, even when its flush ended before this wait)."""
        while self._task is not None and not self._task.done():
            await self._task
        if self._failure is not None:
            raise self._failure


async def _deliver_group(
    ctx: ActionCtx,
    group: Mapping[str, Any],
    lease_ms: float,
    renewal: leases.Renewal,
    release_queue: str | None = None,
) -> bool:
    """Deliver one planned group; with `release_queue`, whether sends of that
    organization are still queued (`claim_many`). Each message is written to the
    process's attempt journal right before its provider takes it (`journal.py`)."""
    organization_id = group["organizationId"]
    attempts_journal = journal.opened(instance.current().data_dir)
    route = route_from_document(group["route"])
    route_providers = enabled_providers(route)
    providers, unavailable = await open_providers(
        organization_id, route_providers, group["providers"]
    )
    health = restored_health(group["health"])
    gate = asyncio.Semaphore(CONCURRENCY)
    policy = instance.current().attachment_fetch
    files: dict[str, tuple[Attachment, ...]] = {}
    missing: dict[str, str] = {}

    async def fetch(send_id: str, described: Sequence[Mapping[str, Any]]) -> None:
        async with gate:
            try:
                files[send_id] = await load(described, ctx.storage.get, policy)
            except AttachmentError as error:
                missing[send_id] = str(error)

    await asyncio.gather(*(fetch(*item) for item in group["attachments"].items()))
    journaled = {} if attempts_journal is None else {"journal": attempts_journal.name}
    batch = await renewal.claimed(ctx.run_mutation(
        internal.transactional_sends.claim,
        {"sendIds": group["sendIds"], "routeProviders": route_providers, "leaseMs": lease_ms,
         "releaseQueue": release_queue, **journaled},
    ), "claimed")  # fmt: skip
    records = _Records(ctx, len(batch["claimed"]))
    sendable = [] if unavailable is not None else [
        {**claimed, "attachments": files.get(claimed["sendId"], ())}
        for claimed in batch["claimed"] if claimed["sendId"] not in missing
    ]  # fmt: skip
    contents = batch.get("contents") or {}
    fields = takes_fields(route_providers)
    prepared = await prepare_all(organization_id, sendable, contents, fields=fields)

    async def one(claimed: dict[str, Any]) -> None:
        async with gate:
            send_id = claimed["sendId"]
            attempts: list[Attempt] = []
            message = prepared.get(send_id)
            if unavailable is not None:
                outcome = failed_outcome("PROVIDER_UNAVAILABLE", unavailable)
            elif send_id in missing:
                outcome = failed_outcome("ATTACHMENT_UNAVAILABLE", missing[send_id])
            elif isinstance(message, CompositionError):
                outcome = failed_outcome("INVALID_MESSAGE", str(message))
            else:
                assert message is not None
                if attempts_journal is not None:
                    noter = attempts_journal.noter(send_id, claimed["claimedAt"])
                    message = dataclasses.replace(message, on_attempt=noter)
                outcome = await deliver_prepared(message, route, providers, health, attempts)
            records.add(send_id, outcome, attempts)

    # Every send runs to its end; an unexpected error is raised after the others.
    results = await asyncio.gather(*map(one, batch["claimed"]), return_exceptions=True)
    await records.wait()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return bool(batch["more"])


async def open_providers(
    organization_id: str, route_providers: Sequence[str], configs: Mapping[str, Any]
) -> tuple[dict[str, EmailProvider], str | None]:
    """The kept provider objects of the route (`configs`: `route_plan`'s "providers"),
    and why one of them cannot be used, if so (then the sends fail PROVIDER_UNAVAILABLE)."""
    providers: dict[str, EmailProvider] = {}
    for name in route_providers:
        config = configs.get(name)
        try:
            if config is None:
                raise CredentialsError(f"{name} is no longer configured")
            providers[name] = await kept_provider(
                organization_id, name, config["settings"], config.get("credentials")
            )
        except CredentialsError as error:
            return providers, f"The {name} provider cannot be used: {error}; configure it again"
    return providers, None


def failed_outcome(code: str, message: str) -> dict[str, Any]:
    return {"status": "failed", "errorCode": code, "errorMessage": message}


async def prepare_all(
    organization_id: str,
    claimed: Sequence[Mapping[str, Any]],
    contents: Mapping[str, Mapping[str, Any]],
    *,
    fields: bool = True,
) -> dict[str, Composed]:
    """Each claimed send personalized and composed (`compose_claimed`) and DKIM-signed
    with its From domain's key in the signing processes (`pooled_composition`: RSA holds
    the GIL, so signing here would stall the API's requests), by send id; or why it
    cannot be sent. `contents`: the claim's content rows, by id; `fields`: whether a
    provider of the route takes the bodies as fields (`pooled_composition`)."""
    prepared: dict[str, Composed] = {}
    items: list[Item] = []
    for item in claimed:
        dkim = item.get("dkim")
        try:
            signer = None if dkim is None else signer_of(organization_id, dkim)
        except CompositionError as error:
            prepared[item["sendId"]] = error
            continue
        items.append((key_of(signer), {**item, "dkim": None}))
    one = functools.partial(compose_claimed, contents)
    done = await compose_all(one, items, fields=fields)
    for (_, item), message in zip(items, done, strict=True):
        prepared[item["sendId"]] = message
    return prepared


async def deliver_prepared(
    message: EmailMessage,
    route: Route,
    providers: Mapping[str, EmailProvider],
    health: Health,
    attempts: list[Attempt],
    *,
    retry: bool = True,
) -> dict[str, Any]:
    """Deliver a composed message (`email_providers.dispatch`, its retries unless `retry`
    is off); its outcome. A provider's refusal also carries `provider` and `retryAfter`
    (seconds or None): what a caller that retries later itself needs."""
    try:
        delivery = await deliver(
            message,
            route,
            {n: _Recorded(n, p, attempts) for n, p in providers.items()},
            health,
            delays=RETRY_DELAYS if retry else (),
            clock=time.time,
            sleep=_capped_sleep,
        )
    except ProviderError as error:
        refused = failed_outcome(error.kind.name, str(error))
        return {**refused, "provider": error.provider, "retryAfter": error.retry_after}
    except NoDeliveryProvider as error:
        return failed_outcome("NO_DELIVERY_PROVIDER", str(error))
    return {
        "status": "sent",
        "provider": delivery.provider,
        "providerMessageId": delivery.result.message_id,
    }


def compose_claimed(
    contents: Mapping[str, Mapping[str, Any]], claimed: Mapping[str, Any], composer: Composer
) -> EmailMessage:
    """A claimed send composed, unsigned (`compose`), its bodies personalized first when
    it names a content (`send_contents.personalized`, with its row in `contents`)."""
    content_id = claimed.get("contentId")
    if content_id is not None:
        variables = claimed.get("dataVariables") or {}
        body = personalized(contents[content_id], variables, claimed.get("footerLinks"))
        claimed = {**claimed, **body}
    return compose(claimed, composer)


def compose(claimed: Mapping[str, Any], composer: Composer | None = None) -> EmailMessage:
    """The claimed send as a prepared message, unsigned: its Message-ID and delivery key,
    its HTML with tracked links when the send is tracked (`lib/tracking`), its loaded
    attachments; composed by the batch's `composer` when given (`composition.Composer`)."""
    message = EmailMessage(
        to=claimed["email"],
        subject=claimed["subject"],
        text=claimed["text"],
        html=tracked(claimed),
        from_address=claimed["fromAddress"],
        idempotency_key=claimed["deliveryKey"],
        headers=dict(claimed["headers"]),
        reply_to=claimed.get("replyTo"),
        attachments=tuple(claimed.get("attachments") or ()),
        message_id=claimed["messageId"],
    )
    return prepare(message, composer=composer)


def signer_of(organization_id: str, dkim: Mapping[str, str]) -> DkimSigner:
    """The signer of a `dkim_key` (kept: `configured.dkim_signer`); `CompositionError`
    when its sealed key does not open."""
    try:
        return dkim_signer(organization_id, dkim)
    except CredentialsError as error:
        raise CompositionError(f"the DKIM key of {dkim['domain']} does not open: {error}") from None


async def _capped_sleep(seconds: float) -> None:
    await asyncio.sleep(min(seconds, MAX_RETRY_WAIT))
