"""`transactionalSends:*`: the sends of the one send path (`lib/sending/sends.py`).

Public (any member): `list` (newest first, without bodies; all, or one transactional
email's) and `get` (one send, with its
bodies for admins only: a transactional mail may hold a recipient's one-time link).
Internal: the delivery actions `deliverQueue` (an organization's queued sends) and
`deliver` (given sends), their steps `plan`, `claim`, `record`, and `renew` (the lease
of the sends a delivery works on, `lib/sending/leases.py`);
`recover` (`recoverStalled` with what the attempt journals tell), run by a cron;
`enqueueSystem`, a system mail (`lib/mailer.py`).
Senders do not call these: they call `lib.sending.sends.enqueue_send` from their mutation.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.audience import PAGINATION_OPTS, live_document, page_options
from owlat.app.lib.errors import not_found
from owlat.app.lib.mailer import SENDER_NAME
from owlat.app.lib.permissions import is_admin_role
from owlat.app.lib.sending import journal, leases, sends
from owlat.app.lib.sending.composition import SendKind
from owlat.app.lib.sending.routes import Attempt
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.runtime import (
    ActionCtx,
    MutationCtx,
    QueryCtx,
    internal,
    internal_action,
    internal_mutation,
    internal_query,
    query,
    v,
)

BODIES = (
    "html",
    "text",
    "headers",
    "dataVariables",
    "deliveryKey",
    "attachments",
    "bodyId",
    "contentId",
    "footerLinks",
)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in row.items() if name not in BODIES}


@query(args={"paginationOpts": PAGINATION_OPTS, "transactionalEmailId": v.optional(v.string())})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A page of the organization's sends, newest first (no bodies); with
    `transactionalEmailId`, that transactional email's only (its test sends too)."""
    organization_id = await get_team_id_from_session(ctx)
    email_id = args.get("transactionalEmailId")
    if email_id is None:
        found = ctx.db.query("transactionalSends").with_index(
            "by_org_queued", lambda q: q.eq("organizationId", organization_id)
        )
    else:
        found = ctx.db.query("transactionalSends").with_index(
            "by_org_transactional_email",
            lambda q: q.eq("organizationId", organization_id).eq("transactionalEmailId", email_id),
        )
    page = await found.order("desc").paginate(page_options(args["paginationOpts"]))
    return {**page, "page": [_summary(dict(row)) for row in page["page"]]}


@query(args={"sendId": v.id("transactionalSends")})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """One send; its bodies (which may hold a recipient's one-time links) to admins only."""
    context = await get_mutation_context(ctx)
    row = await live_document(ctx, "transactionalSends", context.team_id, args["sendId"])
    if row is None:
        raise not_found("Send")
    if not is_admin_role(context.role):
        return _summary(row)
    row.pop("deliveryKey", None)
    row.update(await sends.send_body(ctx, row))
    for name in ("bodyId", "contentId", "footerLinks"):
        row.pop(name, None)
    return {name: value for name, value in row.items() if value is not None}


@internal_mutation(
    args={
        "to": v.string(),
        "subject": v.string(),
        "text": v.string(),
        "deliveryKey": v.optional(v.string()),
    }
)
async def enqueue_system(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A system mail recorded `queued` (its sender delivers it: `lib/mailer.py`)."""
    request = sends.SendRequest(
        organization_id=None,
        kind=SendKind.SYSTEM,
        to=args["to"],
        subject=args["subject"],
        text=args["text"],
        from_email=sends.DEFAULT_FROM_EMAIL,
        from_name=SENDER_NAME,
        delivery_key=args.get("deliveryKey"),
    )
    return await sends.enqueue_send(ctx, request)


@internal_action(
    args={"sendIds": v.array(v.id("transactionalSends")), "leaseMs": v.optional(v.number())}
)
async def deliver(ctx: ActionCtx, args: dict[str, Any]) -> None:
    await sends.deliver_sends(ctx, args["sendIds"], args.get("leaseMs", sends.lease_ms()))


@internal_action(args={"organizationId": v.id("organizations")})
async def deliver_queue(ctx: ActionCtx, args: dict[str, Any]) -> None:
    await sends.deliver_queue(ctx, args["organizationId"], sends.lease_ms())


@internal_query(
    args={
        "sendIds": v.optional(v.array(v.id("transactionalSends"))),
        "organizationId": v.optional(v.id("organizations")),
    }
)
async def plan(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    return await sends.plan(ctx, args.get("sendIds", ()), args.get("organizationId"))


@internal_mutation(
    args={
        "sendIds": v.array(v.id("transactionalSends")),
        "routeProviders": v.array(v.string()),
        "leaseMs": v.number(),
        "releaseQueue": v.optional(v.union(v.id("organizations"), v.null())),
        "journal": v.optional(v.string()),
    }
)
async def claim(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    return await sends.claim_many(
        ctx,
        args["sendIds"],
        args["routeProviders"],
        now_ms(),
        args["leaseMs"],
        args.get("releaseQueue"),
        args.get("journal"),
    )


@internal_mutation(
    args={
        "records": v.array(
            v.object(
                {
                    "sendId": v.id("transactionalSends"),
                    "outcome": v.any(),
                    "attempts": v.array(v.any()),
                }
            )
        )
    }
)
async def record(ctx: MutationCtx, args: dict[str, Any]) -> None:
    records = [
        {**item, "attempts": [Attempt.from_json(attempt) for attempt in item["attempts"]]}
        for item in args["records"]
    ]
    await sends.record(ctx, records, now_ms())


@internal_action(args={})
async def recover(ctx: ActionCtx, args: dict[str, Any]) -> int:
    """`recover_stalled`, run where the attempt journals are: the stalled sends whose
    claim this process's data folder shows unattempted (`journal.py`) are sent again,
    those it shows ended are `sent` (DELIVERY_UNCONFIRMED)."""
    stalled_sends = internal.transactional_sends.stalled
    return int(
        await journal.recover(
            ctx, stalled_sends, internal.transactional_sends.recover_stalled, args
        )
    )


@internal_query(args={})
async def stalled(ctx: QueryCtx, args: dict[str, Any]) -> list[Any]:
    return await sends.stalled(ctx, now_ms(), sends.lease_ms())


@internal_mutation(
    args={
        "leaseMs": v.optional(v.number()),
        "unattempted": v.optional(journal.claims_arg("transactionalSends")),
        "held": v.optional(journal.claims_arg("transactionalSends")),
        "ended": v.optional(journal.claims_arg("transactionalSends")),
    }
)
async def recover_stalled(ctx: MutationCtx, args: dict[str, Any]) -> int:
    return await sends.recover_stalled(
        ctx,
        now_ms(),
        args.get("leaseMs", sends.lease_ms()),
        unattempted=args.get("unattempted") or (),
        held=args.get("held") or (),
        ended=args.get("ended") or (),
    )


@internal_mutation(
    args={"claims": journal.claims_arg("transactionalSends"), "journal": v.optional(v.string())}
)
async def renew(ctx: MutationCtx, args: dict[str, Any]) -> list[str]:
    return await leases.renew(ctx, args["claims"], args.get("journal"), now_ms())
