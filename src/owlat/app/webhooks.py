"""`webhooks:*`: the organization's outgoing webhooks (reference §5; `lib/webhooks/`).

Every function needs `organization:manage` (owners, admins): a webhook's secret signs
what Owlat tells a receiver, and its URL decides where the organization's data goes. The
secret is stored sealed (AES-GCM with the instance's key, bound to the organization, as
provider credentials are): a copy of the database does not let anyone forge deliveries.

    create({name, url, events})   → {webhookId, secret}; secret `whsec_` + 32 alphanumerics
    update({webhookId, name?, url?, events?})
    regenerateSecret({webhookId}) → {secret}
    toggle({webhookId, isActive}) turning on again clears the failure count
    remove({webhookId})           its delivery logs go with it
    list() (no secrets), get({webhookId}) (with it), eventTypes()
    sendTest({webhookId})         a `test` event to an active webhook → the log id
    listDeliveryLogs({webhookId, paginationOpts}), getDeliveryLog({deliveryLogId}),
    getDeliveryStats({webhookId}) → counts by status

Internal: `deliver` (one attempt, `lib/webhooks/delivery.py`), its `plan` and `record`;
`redrive` (a cron: attempts whose scheduled action was lost, e.g. to a restart, are
scheduled again once `REDRIVE_AFTER_MS` overdue); `purgeLogs` (a cron: finished logs
older than 30 days). URLs: `lib/webhooks/targets.py`.
"""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

from owlat.app.lib.audience import PAGINATION_OPTS, live_document, organization_rows, page_options
from owlat.app.lib.email_providers.configured import open_secrets, seal_secrets
from owlat.app.lib.errors import conflict, invalid, not_found
from owlat.app.lib.instance import current
from owlat.app.lib.session_organization import get_mutation_context, now_ms
from owlat.app.lib.webhooks import delivery, targets
from owlat.app.lib.webhooks.events import EVENT_TYPES, TEST_EVENT, enqueue
from owlat.runtime import (
    UNDEFINED,
    ActionCtx,
    MutationCtx,
    QueryCtx,
    internal,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
    v,
)

PERMISSION = "organization:manage"
SECRET_PURPOSE = "webhook"
MAX_NAME = 200
MAX_WEBHOOKS = 20
REDRIVE_AFTER_MS = 120_000  # past an attempt's 30 s timeout
LOG_RETENTION_MS = 30 * 24 * 3600 * 1000
BATCH = 200
_ALPHANUMERIC = string.ascii_letters + string.digits


def new_secret() -> str:
    return "whsec_" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(32))


def _sealed(organization_id: str, secret: str) -> str:
    return seal_secrets(organization_id, SECRET_PURPOSE, {"secret": secret})


def _opened(organization_id: str, sealed: str) -> str:
    return open_secrets(organization_id, SECRET_PURPOSE, sealed)["secret"]


def _name(value: str) -> str:
    name = value.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise invalid("INVALID_NAME", f"Name must be 1 to {MAX_NAME} characters")
    return name


def _url(value: str) -> str:
    url = value.strip()
    problem = targets.url_problem(url, current().webhook_fetch)
    if problem is not None:
        raise invalid("INVALID_URL", f"Webhook URL {problem}")
    return url


def _events(values: list[str]) -> list[str]:
    unknown = sorted(set(values) - set(EVENT_TYPES))
    if unknown:
        raise invalid(
            "INVALID_EVENTS",
            f"Unknown event {unknown[0]!r}; subscribable: {', '.join(EVENT_TYPES)}",
        )
    if not values:
        raise invalid("INVALID_EVENTS", "Subscribe to at least one event")
    return [event for event in EVENT_TYPES if event in values]


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {k: val for k, val in row.items() if k != "secret"}


async def _webhook(ctx: QueryCtx, organization_id: str, webhook_id: str) -> dict[str, Any]:
    row = await live_document(ctx, "webhooks", organization_id, webhook_id)
    if row is None:
        raise not_found("Webhook")
    return row


# -- management ------------------------------------------------------------------------------


@mutation(args={"name": v.string(), "url": v.string(), "events": v.array(v.string())})
async def create(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, str]:
    context = await get_mutation_context(ctx, require=PERMISSION)
    name, url, events = _name(args["name"]), _url(args["url"]), _events(args["events"])
    if len(await organization_rows(ctx, "webhooks", context.team_id)) >= MAX_WEBHOOKS:
        raise conflict("TOO_MANY_WEBHOOKS", f"An organization has at most {MAX_WEBHOOKS} webhooks")
    now, secret = now_ms(), new_secret()
    webhook_id = await ctx.db.insert(
        "webhooks",
        {
            "organizationId": context.team_id,
            "name": name,
            "url": url,
            "events": events,
            "secret": _sealed(context.team_id, secret),
            "isActive": True,
            "consecutiveFailures": 0,
            "createdBy": context.user_id,
            "createdAt": now,
            "updatedAt": now,
        },
    )
    return {"webhookId": str(webhook_id), "secret": secret}


@mutation(
    args={
        "webhookId": v.id("webhooks"),
        "name": v.optional(v.string()),
        "url": v.optional(v.string()),
        "events": v.optional(v.array(v.string())),
    }
)
async def update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await _webhook(ctx, context.team_id, args["webhookId"])
    changes: dict[str, Any] = {"updatedAt": now_ms()}
    if "name" in args:
        changes["name"] = _name(args["name"])
    if "url" in args:
        changes["url"] = _url(args["url"])
    if "events" in args:
        changes["events"] = _events(args["events"])
    await ctx.db.patch(row["_id"], changes)
    return _view({**row, **changes})


@mutation(args={"webhookId": v.id("webhooks")})
async def regenerate_secret(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, str]:
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await _webhook(ctx, context.team_id, args["webhookId"])
    secret = new_secret()
    await ctx.db.patch(
        row["_id"], {"secret": _sealed(context.team_id, secret), "updatedAt": now_ms()}
    )
    return {"secret": secret}


@mutation(args={"webhookId": v.id("webhooks"), "isActive": v.boolean()})
async def toggle(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await _webhook(ctx, context.team_id, args["webhookId"])
    changes: dict[str, Any] = {"isActive": args["isActive"], "updatedAt": now_ms()}
    if args["isActive"]:
        changes.update(consecutiveFailures=0, disabledReason=UNDEFINED)
    await ctx.db.patch(row["_id"], changes)
    return _view({k: val for k, val in {**row, **changes}.items() if val is not UNDEFINED})


@mutation(args={"webhookId": v.id("webhooks")})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await _webhook(ctx, context.team_id, args["webhookId"])
    await ctx.db.delete(row["_id"])
    await ctx.scheduler.run_after(0, internal.webhooks.purge_logs, {"webhookId": row["_id"]})


@query(args={})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    context = await get_mutation_context(ctx, require=PERMISSION)
    rows = await organization_rows(ctx, "webhooks", context.team_id)
    return [_view(row) for row in sorted(rows, key=lambda row: row["createdAt"])]


@query(args={"webhookId": v.id("webhooks")})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await _webhook(ctx, context.team_id, args["webhookId"])
    return {**row, "secret": _opened(context.team_id, row["secret"])}


@query(args={})
async def event_types(ctx: QueryCtx, args: dict[str, Any]) -> list[str]:
    await get_mutation_context(ctx, require=PERMISSION)
    return list(EVENT_TYPES)


@mutation(args={"webhookId": v.id("webhooks")})
async def send_test(ctx: MutationCtx, args: dict[str, Any]) -> str:
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await _webhook(ctx, context.team_id, args["webhookId"])
    if not row["isActive"]:
        raise conflict("WEBHOOK_INACTIVE", "Turn the webhook on before sending a test")
    data = {
        "message": "This is a test webhook from Owlat",
        "webhookId": str(row["_id"]),
        "webhookName": row["name"],
    }
    return await enqueue(ctx, row, TEST_EVENT, data, now_ms())


@query(args={"webhookId": v.id("webhooks"), "paginationOpts": PAGINATION_OPTS})
async def list_delivery_logs(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A page of the webhook's deliveries, newest first."""
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await _webhook(ctx, context.team_id, args["webhookId"])
    return await (
        ctx.db.query("webhookDeliveryLogs")
        .with_index("by_webhook", lambda q: q.eq("webhookId", row["_id"]))
        .order("desc")
        .paginate(page_options(args["paginationOpts"]))
    )


@query(args={"deliveryLogId": v.id("webhookDeliveryLogs")})
async def get_delivery_log(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await live_document(ctx, "webhookDeliveryLogs", context.team_id, args["deliveryLogId"])
    if row is None:
        raise not_found("Delivery log")
    return row


@query(args={"webhookId": v.id("webhooks")})
async def get_delivery_stats(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, int]:
    context = await get_mutation_context(ctx, require=PERMISSION)
    row = await _webhook(ctx, context.team_id, args["webhookId"])
    counts = dict.fromkeys(("pending", "retrying", "success", "failed"), 0)
    async for log in ctx.db.query("webhookDeliveryLogs").with_index(
        "by_webhook", lambda q: q.eq("webhookId", row["_id"])
    ):
        counts[log["status"]] += 1
    return {**counts, "total": sum(counts.values())}


# -- delivery --------------------------------------------------------------------------------


@internal_query(args={"deliveryLogId": v.id("webhookDeliveryLogs")})
async def plan(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The attempt to make now: the log and its webhook's url and secret (None for
    nothing: the log is finished; `webhook` None: it is off or gone)."""
    log = await ctx.db.get(args["deliveryLogId"])
    if log is None or log["status"] not in ("pending", "retrying"):
        return None
    webhook = await ctx.db.get(log["webhookId"])
    if webhook is None or not webhook["isActive"]:
        return {"log": dict(log), "webhook": None}
    target = {k: webhook[k] for k in ("organizationId", "url", "secret")}
    return {"log": dict(log), "webhook": target}


@internal_action(args={"deliveryLogId": v.id("webhookDeliveryLogs")})
async def deliver(ctx: ActionCtx, args: dict[str, Any]) -> None:
    planned = await ctx.run_query(internal.webhooks.plan, args)
    if planned is None:
        return
    log, webhook = planned["log"], planned["webhook"]
    if webhook is None:
        answer = targets.Answer(None, error="The webhook is turned off or was removed")
    else:
        body = log["payload"].encode()
        secret = _opened(webhook["organizationId"], webhook["secret"])
        headers = delivery.headers(log["_id"], log["webhookId"], secret, body, int(time.time()))
        answer = await targets.post(webhook["url"], body, headers, current().webhook_fetch)
    await ctx.run_mutation(
        internal.webhooks.record,
        {
            "deliveryLogId": log["_id"],
            "attemptNumber": log["attemptNumber"],
            "status": answer.status,
            "body": answer.body,
            "error": answer.error,
            "durationMs": answer.duration_ms,
            "final": webhook is None,
        },
    )


@internal_mutation(
    args={
        "deliveryLogId": v.id("webhookDeliveryLogs"),
        "attemptNumber": v.number(),
        "status": v.union(v.number(), v.null()),
        "body": v.string(),
        "error": v.string(),
        "durationMs": v.number(),
        "final": v.boolean(),
    }
)
async def record(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Record one attempt (`delivery.log_patch`), schedule the next or end the delivery."""
    log = await ctx.db.get(args["deliveryLogId"])
    if log is None or log["attemptNumber"] != args["attemptNumber"]:
        return  # recorded already (a redriven attempt raced this one)
    if log["status"] not in ("pending", "retrying"):
        return
    now = now_ms()
    answer = targets.Answer(args["status"], args["body"], args["error"], args["durationMs"])
    attempt = {**log, "maxAttempts": log["attemptNumber"]} if args["final"] else log
    patch = delivery.log_patch(attempt, answer, now)
    await ctx.db.patch(log["_id"], patch)
    if patch["status"] == "retrying":
        await ctx.scheduler.run_at(
            patch["dueAt"], internal.webhooks.deliver, {"deliveryLogId": log["_id"]}
        )
        return
    webhook = await ctx.db.get(log["webhookId"])
    if webhook is not None and log["event"] != TEST_EVENT:
        changes = delivery.webhook_patch(webhook, patch["status"], now)
        if changes:
            await ctx.db.patch(webhook["_id"], changes)


async def _older(
    ctx: QueryCtx, index: str, status: str, field: str, before: float
) -> list[dict[str, Any]]:
    """Up to `BATCH` logs in `status` whose `field` is before `before` (by `index`)."""
    rows = await (
        ctx.db.query("webhookDeliveryLogs")
        .with_index(index, lambda q: q.eq("status", status).lt(field, before))
        .take(BATCH)
    )
    return [dict(row) for row in rows]


@internal_mutation(args={})
async def redrive(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Schedule again the attempts overdue by `REDRIVE_AFTER_MS` (their action was lost)."""
    now = now_ms()
    count = 0
    for status in ("pending", "retrying"):
        for log in await _older(ctx, "by_status_due", status, "dueAt", now - REDRIVE_AFTER_MS):
            await ctx.db.patch(log["_id"], {"dueAt": now})
            await ctx.scheduler.run_after(
                0, internal.webhooks.deliver, {"deliveryLogId": log["_id"]}
            )
            count += 1
    return count


@internal_mutation(args={"webhookId": v.optional(v.id("webhooks"))})
async def purge_logs(ctx: MutationCtx, args: dict[str, Any]) -> int:
    """Delete a removed webhook's logs, or (no webhookId) finished logs older than 30 days;
    a batch, the next one scheduled when it was full."""
    if args.get("webhookId") is not None:
        rows = await (
            ctx.db.query("webhookDeliveryLogs")
            .with_index("by_webhook", lambda q: q.eq("webhookId", args["webhookId"]))
            .take(BATCH)
        )
    else:
        cutoff = now_ms() - LOG_RETENTION_MS
        rows = []
        for status in ("success", "failed"):
            rows += await _older(ctx, "by_status_completed", status, "completedAt", cutoff)
    for row in rows:
        await ctx.db.delete(row["_id"])
    if len(rows) >= BATCH:
        await ctx.scheduler.run_after(0, internal.webhooks.purge_logs, args)
    return len(rows)
