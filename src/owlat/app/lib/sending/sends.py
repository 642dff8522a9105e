"""The one send path: every message Owlat sends to an organization's recipients (the
transactional API, automation steps, test sends) is a `transactionalSends` row moved
through `send_states` by this module.

    send_id = await enqueue_send(ctx, SendRequest(...))      in the caller's mutation
        Checks the request and the From domain (below), records the row `queued` with a
        random delivery key and the Message-ID derived from it, and schedules
        `transactionalSends:deliver` in the same transaction: row and delivery commit or
        roll back together. An `idempotency_key` the organization already used answers
        that send's id and sends nothing.

    transactionalSends:deliver(sendIds)                      internal action, `deliver`
        Loads the route of each send's kind and its providers once, then per send:
        attachments: stored files read, URLs fetched (`attachments.py`), before the claim;
          one that cannot be had fails the send (ATTACHMENT_UNAVAILABLE) once claimed.
        claim (mutation): suppression (`suppression.py`) and the From domain again, since a
          block or a lost verification since enqueueing still holds: refused → `failed`
          with its code; else `sending`, `claimedAt`, `attempts + 1` and the route's
          providers. This commits BEFORE the provider is called.
        compose: the MIME message with the row's Message-ID, DKIM-signed with the key Owlat
          holds for the From domain, if any.
        deliver: `email_providers.dispatch` (route choice, health, retries of RATE_LIMIT and
          SERVER_ERROR) with the delivery key as the provider's idempotency key.
        record (mutation): `sent` (provider, its message id) or `failed` (the error kind as
          `errorCode`, its message), and each attempt into the providers' health.
    A send that ends (`sent` or `failed`) deletes the files its request stored
    (`attachmentStorageIds`); a template's own attachments stay.

The From domain: its exact domain must be a verified sending domain of the organization
(`domains.sender_check`), unless every provider of the route is the local outbox.

At most once. A crash, or any error nobody classified, between claim and record leaves
the row `sending`; `recover_stalled` (a cron, and once at every start) looks at rows left
so for the lease (OWLAT_SEND_LEASE_SECONDS, 15 minutes):
- when every provider of the claim's route dedupes by key (the outbox, Resend), the row is
  claimed again and sent again with the same delivery key and Message-ID: the provider
  answers with the first send (the outbox finds its file, Resend its key for 24 hours), so
  the recipient gets it once;
- otherwise (SMTP, SES: no idempotency key) it becomes `failed` with DELIVERY_UNCERTAIN:
  the relay may have accepted it before the crash, and receivers do not dedupe by
  Message-ID, so sending it again could deliver it twice. Owlat never does;
- after `MAX_ATTEMPTS` claims, `failed` as well.
Rows left `queued` as long (their delivery job was lost) are scheduled again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from owlat.app.lib import instance
from owlat.app.lib.audience import clean_email, organization_rows, organization_settings
from owlat.app.lib.domains.sender_check import ensure_sender_allowed
from owlat.app.lib.email_providers.configured import dkim_signer, kept_provider
from owlat.app.lib.email_providers.credentials import CredentialsError
from owlat.app.lib.email_providers.dispatch import deliver
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
from owlat.app.lib.sending.attachments import MAX_ATTACHMENTS, AttachmentError, load
from owlat.app.lib.sending.composition import (
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
from owlat.app.lib.sending.routes import (
    Attempt,
    enabled_providers,
    health_rows,
    is_idempotent,
    provider_row,
    record_attempts,
    restored_health,
    route_document,
    route_for,
    route_from_document,
)
from owlat.app.lib.sending.send_states import Outcome, SendStatus, transition
from owlat.app.lib.sending.suppression import suppressed
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
DEFAULT_FROM_EMAIL = "no-reply@owlat.local"  # the outbox's sender when none is set


@dataclasses.dataclass(frozen=True)
class SendRequest:
    """One message to one recipient. `text` empty: derived from `html`. From: the given
    address, else the organization's default sender (settings), else `DEFAULT_FROM_EMAIL`.
    `unsubscribe_url`, `list_id`, `feedback_id`: the kind's headers (`kind_headers`)."""

    organization_id: str
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
    text = request.text or html_to_text(request.html or "")
    if not text.strip() and not request.html:
        raise invalid("INVALID_CONTENT", "A message needs a text or an HTML body")
    if len(text) + len(request.html or "") > MAX_CONTENT:
        raise invalid(
            "MESSAGE_TOO_LARGE", f"HTML and text together exceed {MAX_CONTENT:,} characters"
        )
    reply_to = None if request.reply_to is None else clean_email(request.reply_to)
    if len(request.attachments) > MAX_ATTACHMENTS:
        raise invalid("TOO_MANY_ATTACHMENTS", f"At most {MAX_ATTACHMENTS} attachments")
    delivery_key = secrets.token_hex(16)
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
    row: dict[str, Any] = {
        "organizationId": organization_id,
        "kind": str(request.kind),
        "email": to,
        "fromAddress": from_address,
        "subject": subject,
        "text": text,
        "headers": headers,
        "deliveryKey": delivery_key,
        "messageId": message_id_for(message),
        "status": str(SendStatus.QUEUED),
        "attempts": 0,
        "queuedAt": now,
        "updatedAt": now,
    }
    optional = {
        "html": request.html,
        "replyTo": reply_to,
        "contactId": request.contact_id,
        "idempotencyKey": key,
        "transactionalEmailId": request.transactional_email_id,
        "automationId": request.automation_id,
        "language": request.language,
        "dataVariables": None if request.data_variables is None else dict(request.data_variables),
        "createdBy": request.created_by,
        "attachments": [dict(item) for item in request.attachments] or None,
        "attachmentStorageIds": list(request.owned_storage_ids) or None,
    }
    row.update({name: value for name, value in optional.items() if value is not None})
    send_id = await ctx.db.insert("transactionalSends", row)
    await ctx.scheduler.run_after(0, internal.transactional_sends.deliver, {"sendIds": [send_id]})
    return str(send_id)


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
    a domain that is not a verified sending domain, unless its kind's route is the outbox)."""
    from_address = await _from_address(ctx, request)
    route = await route_for(ctx, request.organization_id, MessageType(request.kind))
    await check_sender(ctx, request.organization_id, from_address, enabled_providers(route))
    return from_address


async def _from_address(ctx: QueryCtx, request: SendRequest) -> str:
    settings = await organization_settings(ctx, request.organization_id) or {}
    email = request.from_email or settings.get("defaultFromEmail") or DEFAULT_FROM_EMAIL
    name = request.from_name if request.from_email else settings.get("defaultFromName")
    try:
        address = mailbox(format_address(name or "", email.strip()), "From")
    except CompositionError as error:
        raise invalid("INVALID_SENDER", str(error)) from None
    return str(address)


async def check_sender(
    ctx: QueryCtx, organization_id: str, from_address: str, providers: Sequence[str]
) -> None:
    """Refuse a From address whose exact domain is not a verified sending domain of the
    organization, unless every provider of the route is the local outbox."""
    outside = [provider for provider in providers if provider != "outbox"]
    domains = await organization_rows(ctx, "domains", organization_id)
    ensure_sender_allowed(from_address, domains, outside[0] if outside else "outbox")


# -- claim and record (the delivery's mutations) ---------------------------------------------


async def claim(
    ctx: MutationCtx, send_id: str, route_providers: Sequence[str], now: float, lease_ms: float
) -> dict[str, Any] | None:
    """Move a send to `sending` before its provider call; what to send, or None when
    there is nothing to send (refused: recorded `failed`; claimed or finished already)."""
    row = await ctx.db.get(send_id)
    if row is None:
        return None
    status = SendStatus(row["status"])
    if status is SendStatus.SENDING:
        if now - (row.get("claimedAt") or 0) < lease_ms:
            return None  # another delivery holds it
        earlier = row.get("routeProviders") or []
        if not (is_idempotent(earlier) and set(route_providers) <= set(earlier)):
            await _fail(ctx, row, "DELIVERY_UNCERTAIN", UNCERTAIN, now)
            return None
    elif status is not SendStatus.QUEUED:
        return None
    refusal = await _refusal(ctx, row, route_providers)
    if refusal is not None:
        await _fail(ctx, row, *refusal, now)
        return None
    await ctx.db.patch(
        row["_id"],
        {
            "status": str(SendStatus.SENDING),
            "claimedAt": now,
            "attempts": row["attempts"] + 1,
            "routeProviders": list(route_providers),
            "updatedAt": now,
        },
    )
    fields = ("email", "fromAddress", "replyTo", "subject", "html", "text", "headers")
    claimed = {name: row.get(name) for name in fields}
    claimed.update(sendId=row["_id"], deliveryKey=row["deliveryKey"], messageId=row["messageId"])
    claimed["dkim"] = await dkim_key(ctx, row)
    claimed["tracking"] = await tracking_for(ctx, row)
    return claimed


UNCERTAIN = (
    "Delivery was interrupted after the message was handed to a provider that cannot "
    "tell whether it already took it; it is not sent again, so it is never sent twice"
)


async def _refusal(
    ctx: QueryCtx, row: Mapping[str, Any], route_providers: Sequence[str]
) -> tuple[str, str] | None:
    """(code, message) of why the send must not go out now, or None."""
    kind = SendKind(row["kind"])
    reason = await suppressed(ctx, row["organizationId"], kind, row["email"], row.get("contactId"))
    if reason is not None:
        return "RECIPIENT_SUPPRESSED", reason
    try:
        await check_sender(ctx, row["organizationId"], row["fromAddress"], route_providers)
    except AppError as error:
        return error.error_code, str(error.data)
    if row["attempts"] >= MAX_ATTEMPTS:
        return "TOO_MANY_ATTEMPTS", _interrupted(row["attempts"])
    return None


async def dkim_key(ctx: QueryCtx, row: Mapping[str, Any]) -> dict[str, str] | None:
    """The From domain's DKIM key Owlat holds (sealed), if any."""
    domain = str(mailbox(row["fromAddress"], "From").domain).lower()
    found = (
        await ctx.db.query("domains")
        .with_index(
            "by_org_domain",
            lambda q: q.eq("organizationId", row["organizationId"]).eq("domain", domain),
        )
        .first()
    )
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
    ctx: MutationCtx, row: Mapping[str, Any], code: str, message: str, now: float
) -> None:
    """A send that did not go out: `failed` (only from `queued` or `sending`: `sent →
    failed` is a provider's later refusal, never a delivery's own outcome)."""
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
        await _release_files(ctx, row)


async def _release_files(ctx: MutationCtx, row: Mapping[str, Any]) -> None:
    """Delete the files the send's request stored (the send has ended)."""
    for storage_id in row.get("attachmentStorageIds") or ():
        if await ctx.db.system.get(storage_id) is not None:
            await ctx.storage.delete(storage_id)


async def record(
    ctx: MutationCtx,
    send_id: str,
    outcome: Mapping[str, Any],
    attempts: Sequence[Attempt],
    now: float,
) -> None:
    """Record a delivery's outcome: `{status: sent, provider, providerMessageId}` or
    `{status: failed, errorCode, errorMessage}`, and its attempts into provider health."""
    row = await ctx.db.get(send_id)
    if row is None:
        return
    if attempts:
        await record_attempts(ctx, row["organizationId"], attempts, now)
    if outcome["status"] == "failed":
        await _fail(ctx, row, outcome["errorCode"], outcome["errorMessage"], now)
        return
    if transition(SendStatus(row["status"]), SendStatus.SENT) is Outcome.APPLY:
        await ctx.db.patch(
            row["_id"],
            {
                "status": str(SendStatus.SENT),
                "sentAt": now,
                "providerType": outcome["provider"],
                "providerMessageId": outcome["providerMessageId"],
                "errorCode": UNDEFINED,
                "errorMessage": UNDEFINED,
                "updatedAt": now,
            },
        )
        await _release_files(ctx, row)


async def recover_stalled(ctx: MutationCtx, now: float, lease_ms: float, limit: int = 200) -> int:
    """Re-drive sends left `queued` or `sending` for `lease_ms` (module docstring); how many
    rows were handled."""
    redo: list[str] = []
    handled = 0
    for status in (SendStatus.QUEUED, SendStatus.SENDING):
        for row in await _left_since(ctx, status, now - lease_ms, limit):
            handled += 1
            resendable = status is SendStatus.QUEUED or (
                is_idempotent(row.get("routeProviders") or []) and row["attempts"] < MAX_ATTEMPTS
            )
            if resendable:
                await ctx.db.patch(row["_id"], {"updatedAt": now})
                redo.append(row["_id"])
            elif row["attempts"] >= MAX_ATTEMPTS:
                await _fail(ctx, row, "TOO_MANY_ATTEMPTS", _interrupted(row["attempts"]), now)
            else:
                await _fail(ctx, row, "DELIVERY_UNCERTAIN", UNCERTAIN, now)
    for start in range(0, len(redo), BATCH):
        await ctx.scheduler.run_after(
            0,
            internal.transactional_sends.deliver,
            {"sendIds": redo[start : start + BATCH], "leaseMs": lease_ms},
        )
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


async def plan(ctx: QueryCtx, send_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The sends grouped by organization and kind, each group with its route, the sealed
    settings of its providers and their health (read by the delivery action)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for send_id in send_ids:
        row = await ctx.db.get(send_id)
        if row is None:
            continue
        key = (row["organizationId"], row["kind"])
        if key not in groups:
            groups[key] = await route_plan(ctx, *key)
        groups[key]["sendIds"].append(row["_id"])
        if row.get("attachments"):
            groups[key]["attachments"][row["_id"]] = row["attachments"]
    return list(groups.values())


async def route_plan(ctx: QueryCtx, organization_id: str, kind: str) -> dict[str, Any]:
    """The route of `kind`, the sealed settings of its providers and their health."""
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
        "organizationId": organization_id,
        "kind": kind,
        "sendIds": [],
        "attachments": {},  # sendId -> its attachments (sends that have some)
        "route": route_document(route),
        "providers": providers,
        "health": list((await health_rows(ctx, organization_id)).values()),
    }


class _Recorded:
    """A provider whose calls are written down as `Attempt`s (for provider health)."""

    def __init__(self, name: str, provider: EmailProvider, attempts: list[Attempt]) -> None:
        self._name, self._provider, self._attempts = name, provider, attempts

    async def send(self, message: EmailMessage) -> SendResult:
        try:
            result = await self._provider.send(message)
        except ProviderError as error:
            self._attempts.append(Attempt(self._name, error.kind, error.message))
            raise
        self._attempts.append(Attempt(self._name))
        return result


async def deliver_sends(ctx: ActionCtx, send_ids: Sequence[str], lease_ms: float) -> None:
    """The delivery action's work (module docstring): every send of `send_ids`."""
    for group in await ctx.run_query(
        internal.transactional_sends.plan, {"sendIds": list(send_ids)}
    ):
        await _deliver_group(ctx, group, lease_ms)


async def _deliver_group(ctx: ActionCtx, group: Mapping[str, Any], lease_ms: float) -> None:
    organization_id = group["organizationId"]
    route = route_from_document(group["route"])
    route_providers = enabled_providers(route)
    providers, unavailable = await open_providers(
        organization_id, route_providers, group["providers"]
    )
    health = restored_health(group["health"])
    gate = asyncio.Semaphore(CONCURRENCY)
    policy = instance.current().attachment_fetch

    async def one(send_id: str) -> None:
        async with gate:
            files: tuple[Attachment, ...] = ()
            missing = None
            if group["attachments"].get(send_id):
                try:
                    files = await load(group["attachments"][send_id], ctx.storage.get, policy)
                except AttachmentError as error:
                    missing = str(error)
            claimed = await ctx.run_mutation(
                internal.transactional_sends.claim,
                {"sendId": send_id, "routeProviders": route_providers, "leaseMs": lease_ms},
            )
            if claimed is None:
                return
            attempts: list[Attempt] = []
            if unavailable is not None:
                outcome = failed_outcome("PROVIDER_UNAVAILABLE", unavailable)
            elif missing is not None:
                outcome = failed_outcome("ATTACHMENT_UNAVAILABLE", missing)
            else:
                claimed = {**claimed, "attachments": files}
                outcome = await send_claimed(
                    organization_id, claimed, route, providers, health, attempts
                )
            await ctx.run_mutation(
                internal.transactional_sends.record,
                {
                    "sendId": send_id,
                    "outcome": outcome,
                    "attempts": [a.to_json() for a in attempts],
                },
            )

    # Every send runs to its end; an unexpected error is raised after the others.
    results = await asyncio.gather(*map(one, group["sendIds"]), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


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


async def send_claimed(
    organization_id: str,
    claimed: Mapping[str, Any],
    route: Route,
    providers: Mapping[str, EmailProvider],
    health: Health,
    attempts: list[Attempt],
) -> dict[str, Any]:
    """Compose and deliver one claimed send; its outcome. Errors nobody classified
    propagate: the row stays `sending` for `recover_stalled`."""
    try:
        message = compose(organization_id, claimed)
        delivery = await deliver(
            message,
            route,
            {n: _Recorded(n, p, attempts) for n, p in providers.items()},
            health,
            clock=time.time,
            sleep=_capped_sleep,
        )
    except CompositionError as error:
        return failed_outcome("INVALID_MESSAGE", str(error))
    except ProviderError as error:
        return failed_outcome(error.kind.name, str(error))
    except NoDeliveryProvider as error:
        return failed_outcome("NO_DELIVERY_PROVIDER", str(error))
    return {
        "status": "sent",
        "provider": delivery.provider,
        "providerMessageId": delivery.result.message_id,
    }


def compose(organization_id: str, claimed: Mapping[str, Any]) -> EmailMessage:
    """The claimed send as a prepared message: its Message-ID and delivery key, its HTML
    with tracked links when the send is tracked (`lib/tracking`), MIME bytes DKIM-signed
    with the From domain's key Owlat holds (if any), its loaded attachments."""
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
    dkim = claimed.get("dkim")
    try:
        signer = None if dkim is None else dkim_signer(organization_id, dkim)
    except CredentialsError as error:
        raise CompositionError(
            f"the DKIM key of {dkim and dkim['domain']} does not open: {error}"
        ) from None
    return prepare(message, dkim=signer)


async def _capped_sleep(seconds: float) -> None:
    await asyncio.sleep(min(seconds, MAX_RETRY_WAIT))
