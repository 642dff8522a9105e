"""`emails:*`: test sends from the dashboard (permission `emails:test`: every role).

`sendTest` renders blocks (`content`, a JSON array of blocks, with the organization's brand
theme) personalized with `variables` (over `{email: to}`), or takes ready `html` as it is,
and sends it as kind `test` through the `test` route (`lib/sending/sends.py`): subject
tagged "[TEST] ", no suppression check and no effect on anyone's suppression or
statistics. A member may send `quotas.TEST_SENDS` test sends per `quotas.TEST_WINDOW_MS`.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.audience import organization_settings
from owlat.app.lib.errors import invalid
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.rendering import (
    Theme,
    compile_template,
    personalize,
    render_template,
    validate_content,
)
from owlat.app.lib.sending.composition import SendKind
from owlat.app.lib.sending.quotas import take_test_send
from owlat.app.lib.sending.sends import SendRequest, enqueue_send
from owlat.app.lib.session_organization import get_mutation_context
from owlat.app.schema import PROPERTY_VALUE
from owlat.runtime import MutationCtx, mutation, v


@mutation(
    args={
        "to": v.string(),
        "subject": v.string(),
        "content": v.optional(v.string()),
        "html": v.optional(v.string()),
        "text": v.optional(v.string()),
        "preheader": v.optional(v.string()),
        "fromEmail": v.optional(v.string()),
        "fromName": v.optional(v.string()),
        "replyTo": v.optional(v.string()),
        "variables": v.optional(v.record(v.string(), PROPERTY_VALUE)),
    }
)
async def send_test(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Send a test of `content` (blocks) or `html` to `to`; the send's id
    (`transactionalSends:get`)."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "emails:test")
    if (args.get("content") is None) == (args.get("html") is None):
        raise invalid("INVALID_CONTENT", "Give either content (blocks) or html, not both")
    await take_test_send(ctx, context.user_id)
    subject, html, text = args["subject"], args.get("html"), args.get("text") or ""
    if args.get("content") is not None:
        settings = await organization_settings(ctx, context.team_id) or {}
        rendered = render_template(
            validate_content(args["content"]),
            subject=subject,
            preheader=args.get("preheader") or "",
            theme=Theme.from_settings(settings.get("brandTheme")),
            text=args.get("text"),
        )
        message = personalize(
            compile_template(rendered), {"email": args["to"], **(args.get("variables") or {})}
        )
        subject, html, text = message.subject, message.html, message.text
    return await enqueue_send(
        ctx,
        SendRequest(
            organization_id=context.team_id,
            kind=SendKind.TEST,
            to=args["to"],
            subject=subject,
            text=text,
            html=html,
            from_email=args.get("fromEmail"),
            from_name=args.get("fromName"),
            reply_to=args.get("replyTo"),
            created_by=context.user_id,
        ),
    )
