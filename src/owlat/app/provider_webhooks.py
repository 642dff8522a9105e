"""Inbound provider webhooks on the site port (reference §6): what SES (through SNS) and
Resend say happened to the messages they accepted.

    POST /webhooks/ses      SNS messages (lib/provider_webhooks/sns.py, ses.py)
    POST /webhooks/resend   Svix-signed Resend events (lib/provider_webhooks/resend.py)

Each exists twice. `/webhooks/<provider>` is the instance's: the SNS topics of
OWLAT_SES_SNS_TOPIC_ARNS, the Svix secret OWLAT_RESEND_WEBHOOK_SECRET, events applied to
any organization's sends (one operator's provider accounts, upstream's setup).
`/webhooks/<provider>/<organizationId>` is one organization's: the `snsTopicArn` of its SES
settings, the `webhookSecret` of its Resend settings (`emailProviders:saveSes/saveResend`),
events applied to its own sends only; an unknown organization → 404.

The pipeline: another method → 405; past `webhook_requests` for `<source>:<address>`
(upstream's 50/s, burst 100, counted in memory) → 429; the endpoint not configured → 503;
a body over 512 KB → 413; the signature (and, for SNS, the topic) → the verifier's status
with `{"error": reason}`; then in one mutation (`ingest`) the raw body is kept in
`webhookPayloads` (90 days: the `purgePayloads` cron) and each event is applied to the
send the provider accepted as that message id (`send_tables.by_provider_message`, only
sends that provider sent) through the send lifecycle (`lib/sending/feedback.py`). Answers:
`{"success": true, "kind": ...}` for one event, `{"success": true, "processed": N}` for
several, `{"success": true, "ignored": true}` for nothing actionable, 400 `{"error":
"Invalid event payload"}` for a body of no known shape, 500 `{"error": "Failed to process
event"}` when applying failed (nothing is kept then; the provider retries). An SNS
`SubscriptionConfirmation` is confirmed (`{"success": true, "kind":
"subscription_confirmed"}`). Errors are plain strings, as upstream's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.auth_routes.wire import client_ip
from owlat.app.lib.email_providers.configured import open_secrets
from owlat.app.lib.email_providers.credentials import CredentialsError
from owlat.app.lib.instance import current
from owlat.app.lib.provider_webhooks import resend, ses, sns
from owlat.app.lib.provider_webhooks.events import ProviderEvent, Refused
from owlat.app.lib.sending import feedback
from owlat.app.lib.sending.routes import provider_row
from owlat.app.lib.sending.send_tables import by_provider_message
from owlat.app.lib.session_organization import now_ms
from owlat.runtime import (
    ROUTABLE_METHODS,
    ActionCtx,
    HttpAction,
    JSONResponse,
    MutationCtx,
    QueryCtx,
    http_action,
    internal,
    internal_mutation,
    internal_query,
    v,
)

log = logging.getLogger(__name__)
MAX_BODY = 512 * 1024
RETENTION_MS = 90 * 24 * 3600 * 1000
PURGE_BATCH = 500
Handler = Callable[[ActionCtx, bytes, Request], Awaitable[Response]]


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})


async def _read(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Refused(413, "Request body too large")
    return body


def _event_args(event: ProviderEvent) -> dict[str, Any]:
    args: dict[str, Any] = {"kind": event.kind, "messageId": event.message_id, "at": event.at}
    if event.bounce_type is not None:
        args["bounceType"] = event.bounce_type
    if event.message:
        args["message"] = event.message
    return args


async def _ingest(
    ctx: ActionCtx,
    receiver: _Receiver,
    source: str,
    raw: bytes,
    events: list[ProviderEvent],
    kind: str | None = None,
) -> Response:
    args: dict[str, Any] = {
        "source": source,
        "payload": raw.decode("utf-8", "replace"),
        "events": [_event_args(event) for event in events],
    }
    if receiver.organization_id is not None:
        args["organizationId"] = receiver.organization_id
    try:
        await ctx.run_mutation(internal.provider_webhooks.ingest, args)
    except Exception:  # the provider retries; the operator reads why in the log
        log.exception("applying a %s webhook failed", source)
        return _json({"error": "Failed to process event"}, 500)
    if kind is not None:
        return _json({"success": True, "kind": kind})
    if not events:
        return _json({"success": True, "ignored": True})
    if len(events) == 1:
        return _json({"success": True, "kind": events[0].kind})
    return _json({"success": True, "processed": len(events)})


@dataclasses.dataclass(frozen=True)
class _Receiver:
    """Whose endpoint a request came to, and what it is verified with."""

    organization_id: str | None  # None: the instance's endpoint
    topics: tuple[str, ...] = ()  # SES
    secret: str = ""  # Resend


async def _receiver(ctx: ActionCtx, request: Request, source: str) -> _Receiver:
    rest = request.url.path[len(f"/webhooks/{source}") :]
    instance = current()
    if not rest:
        receiver = _Receiver(None, instance.ses_sns_topic_arns, instance.resend_webhook_secret)
    else:
        organization_id = rest.removeprefix("/")
        config = await ctx.run_query(
            internal.provider_webhooks.endpoint, {"organizationId": organization_id, "kind": source}
        )
        if config is None:
            raise Refused(404, "Unknown webhook endpoint")
        topic = config["settings"].get("snsTopicArn")
        secret = ""
        if source == "resend" and config["credentials"] is not None:
            try:
                sealed = open_secrets(organization_id, source, config["credentials"])
            except CredentialsError:
                sealed = {}
            secret = sealed.get("webhookSecret", "")
        receiver = _Receiver(organization_id, (topic,) if topic else (), secret)
    if not (receiver.topics if source == "ses" else receiver.secret):
        name = "SES" if source == "ses" else "Resend"
        where = "" if receiver.organization_id is None else " for this organization"
        raise Refused(503, f"{name} webhooks are not configured{where}")
    return receiver


async def _ses(ctx: ActionCtx, raw: bytes, request: Request) -> Response:
    receiver = await _receiver(ctx, request, "ses")
    try:
        message = json.loads(raw)
    except ValueError:
        raise Refused(400, "Invalid JSON") from None
    if not isinstance(message, dict):
        raise Refused(400, "Invalid JSON")
    policy = current().sns
    await sns.verify(message, receiver.topics, policy)
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        await sns.confirm_subscription(message, policy)
        return await _ingest(ctx, receiver, "ses", raw, [], "subscription_confirmed")
    if kind != "Notification":
        return await _ingest(ctx, receiver, "ses", raw, [])
    try:
        events = ses.events(str(message.get("Message")), now_ms())
    except ValueError:
        raise Refused(400, "Invalid event payload") from None
    return await _ingest(ctx, receiver, "ses", raw, events)


async def _resend(ctx: ActionCtx, raw: bytes, request: Request) -> Response:
    receiver = await _receiver(ctx, request, "resend")
    resend.verify(request.headers, raw, receiver.secret)
    try:
        events = resend.events(json.loads(raw), now_ms())
    except ValueError:
        raise Refused(400, "Invalid event payload") from None
    return await _ingest(ctx, receiver, "resend", raw, events)


def _endpoint(source: str, handle: Handler) -> HttpAction:
    async def receive(ctx: ActionCtx, request: Request) -> Response:
        try:
            if current().webhook_requests.take(f"{source}:{client_ip(request)}") is not None:
                raise Refused(429, "Rate limit exceeded")
            return await handle(ctx, await _read(request), request)
        except Refused as refused:
            return _json({"error": refused.reason}, refused.status)

    receive.__name__ = receive.__qualname__ = f"POST /webhooks/{source}"
    return http_action(receive)


async def _not_allowed(ctx: ActionCtx, request: Request) -> Response:
    return _json({"error": "Method not allowed"}, 405)


def routes() -> list[tuple[str, str, HttpAction]]:
    """(path or prefix ending in "/", method, handler): POST per provider (the instance's
    and, under the prefix, an organization's), 405 for every other method."""
    refuse = http_action(_not_allowed)
    table: list[tuple[str, str, HttpAction]] = []
    for source, handle in (("ses", _ses), ("resend", _resend)):
        receive = _endpoint(source, handle)
        for path in (f"/webhooks/{source}", f"/webhooks/{source}/"):
            for method in ROUTABLE_METHODS:
                table.append((path, method, receive if method == "POST" else refuse))
    return table


_EVENT = v.object(
    {
        "kind": v.union(v.literal("delivered"), v.literal("bounced"), v.literal("complained")),
        "messageId": v.string(),
        "at": v.number(),
        "bounceType": v.optional(v.union(v.literal("hard"), v.literal("soft"))),
        "message": v.optional(v.string()),
    }
)


@internal_query(args={"organizationId": v.string(), "kind": v.string()})
async def endpoint(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The organization's settings and sealed secrets of provider `kind` (empty when it is
    not configured), or None when there is no such organization."""
    organization_id = ctx.db.normalize_id("organizations", args["organizationId"])
    if organization_id is None or await ctx.db.get(organization_id) is None:
        return None
    row = await provider_row(ctx, organization_id, args["kind"])
    if row is None:
        return {"settings": {}, "credentials": None}
    return {"settings": row["settings"], "credentials": row["credentials"]}


@internal_mutation(
    args={
        "source": v.string(),
        "payload": v.string(),
        "events": v.array(_EVENT),
        "organizationId": v.optional(v.string()),
    }
)
async def ingest(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, int]:
    """Keep the raw payload; apply each event to its send (of `organizationId` only, when
    given). How many were applied and how many matched no send of that provider."""
    await ctx.db.insert(
        "webhookPayloads",
        {"source": args["source"], "rawPayload": args["payload"], "receivedAt": now_ms()},
    )
    applied = unresolved = 0
    for item in args["events"]:
        found = await by_provider_message(
            ctx, args["source"], item["messageId"], args.get("organizationId")
        )
        if found is None:
            unresolved += 1
            log.info(
                "%s %s for unknown message %s", args["source"], item["kind"], item["messageId"]
            )
            continue
        table, row = found
        event = feedback.Event(
            item["kind"], item["at"], item.get("bounceType"), item.get("message", "")
        )
        await feedback.apply(ctx, table, row, event)
        applied += 1
    return {"applied": applied, "unresolved": unresolved}


@internal_mutation(args={})
async def purge_payloads(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Delete raw payloads older than 90 days (a batch; the next one scheduled when full)."""
    cutoff = now_ms() - RETENTION_MS
    old = await (
        ctx.db.query("webhookPayloads")
        .with_index("by_received", lambda q: q.lt("receivedAt", cutoff))
        .take(PURGE_BATCH)
    )
    for row in old:
        await ctx.db.delete(row["_id"])
    if len(old) == PURGE_BATCH:
        await ctx.scheduler.run_after(0, internal.provider_webhooks.purge_payloads, {})
    return len(old)
