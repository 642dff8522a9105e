"""Share links (reference §7.4, §4): a public preview of a template, for 48 hours.

`create({templateId} | {transactionalEmailId})` snapshots the email template or the
transactional email as rendered now (personalized for the sample contact) and answers the
link: a random 24-character token, shown this once (only its SHA-256 is stored), valid
`TTL_MS`. `revoke` ends a link at once; `list` shows a template's links (without tokens).
Reads: any member; writes: `shareLinks:manage`. Anyone holding the token reads the
snapshot through the site port (`share_routes.py`): `GET /share/{token}` (JSON, upstream's
wire) and `GET /preview/{token}` (the page); both answer 404 for a link that is unknown,
revoked or expired.
"""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from owlat.app.lib import instance
from owlat.app.lib.errors import invalid, not_found
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.rendering import compile_template, personalize
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.lib.templates import (
    EMAIL_TEMPLATES,
    RENDERER_VERSION,
    SAMPLE_CONTACT,
    TemplateKind,
    find_template,
    stored_rendering,
    template_of,
)
from owlat.app.lib.tokens import random_token, token_hash
from owlat.app.lib.transactional_emails import TRANSACTIONAL
from owlat.runtime import MutationCtx, QueryCtx, internal_query, mutation, query, v

TTL_MS = 48 * 3600 * 1000
TOKEN_LENGTH = 24
PAGE_PATH = "/preview/"
_HIDDEN = ("tokenHash", "htmlContent")
TARGET = {"templateId": v.optional(v.string()), "transactionalEmailId": v.optional(v.string())}
# what a link points at: (kind, targetType, the link's field, its index)
_TARGETS = {
    "templateId": (EMAIL_TEMPLATES, "emailTemplate", "emailTemplateId", "by_template"),
    "transactionalEmailId": (
        TRANSACTIONAL, "transactionalEmail", "transactionalEmailId", "by_transactional_email",
    ),
}  # fmt: skip


def _target(args: dict[str, Any]) -> tuple[str, TemplateKind, str, str, str]:
    """(the id, its kind, targetType, the link's field, its index) of `args`."""
    given = [name for name in _TARGETS if args.get(name) is not None]
    if len(given) != 1:
        raise invalid("INVALID_TARGET", "Give either templateId or transactionalEmailId")
    return (args[given[0]], *_TARGETS[given[0]])


def link_url(token: str) -> str:
    return f"{instance.current().base_url}{PAGE_PATH}{quote(token, safe='')}"


@mutation(args=TARGET)
async def create(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """A new link to the template's current rendering: `{shareLinkId, token, url,
    expiresAt}` (the token is not shown again)."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "shareLinks:manage")
    target_id, kind, target_type, field, _ = _target(args)
    template = await template_of(ctx, context.team_id, target_id, kind)
    message = personalize(compile_template(stored_rendering(template)), SAMPLE_CONTACT)
    token = random_token(TOKEN_LENGTH)
    now = now_ms()
    link: dict[str, Any] = {
        "organizationId": context.team_id,
        "targetType": target_type,
        field: template["_id"],
        "tokenHash": token_hash(token),
        "htmlContent": message.html,
        "rendererVersion": template.get("rendererVersion") or RENDERER_VERSION,
        "subject": message.subject,
        "expiresAt": now + TTL_MS,
        "createdBy": context.user_id,
        "createdAt": now,
    }
    if template.get("previewText"):
        link["previewText"] = template["previewText"]
    link_id = await ctx.db.insert("shareLinks", link)
    return {
        "shareLinkId": str(link_id),
        "token": token,
        "url": link_url(token),
        "expiresAt": link["expiresAt"],
    }


@mutation(args={"shareLinkId": v.string()})
async def revoke(ctx: MutationCtx, args: dict[str, Any]) -> None:
    context = await get_mutation_context(ctx)
    require_permission(context.role, "shareLinks:manage")
    normalized = ctx.db.normalize_id("shareLinks", args["shareLinkId"])
    link = None if normalized is None else await ctx.db.get(normalized)
    if link is None or link["organizationId"] != context.team_id:
        raise not_found("Share link")
    if link.get("revokedAt") is None:
        await ctx.db.patch(link["_id"], {"revokedAt": now_ms()})


@query(args=TARGET)
async def list(  # shadows the builtin
    ctx: QueryCtx, args: dict[str, Any]
) -> builtins.list[dict[str, Any]]:
    """The template's links, newest first, with `active` (neither revoked nor expired)."""
    organization_id = await get_team_id_from_session(ctx)
    target_id, kind, _, field, index = _target(args)
    template = await find_template(ctx, organization_id, target_id, kind)
    if template is None:
        return []
    rows = await (
        ctx.db.query("shareLinks")
        .with_index(index, lambda q: q.eq(field, template["_id"]))
        .order("desc")
        .take(100)
    )
    now = now_ms()
    return [
        {
            **{k: val for k, val in row.items() if k not in _HIDDEN},
            "active": row.get("revokedAt") is None and row["expiresAt"] > now,
        }
        for row in rows
    ]


@internal_query(args={"token": v.string()})
async def resolve(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """What `GET /share/{token}` answers: `{ok: true, data: {html, subject, previewText?,
    organizationName, expiresAt}}`, or `{ok: false, status: 404, reason, message}`."""
    link = await (
        ctx.db.query("shareLinks")
        .with_index("by_token_hash", lambda q: q.eq("tokenHash", token_hash(args["token"])))
        .first()
    )
    if link is None or link.get("revokedAt") is not None:
        return {
            "ok": False,
            "status": 404,
            "reason": "share_link_not_found",
            "message": "Share link not found",
        }
    if link["expiresAt"] <= now_ms():
        return {
            "ok": False,
            "status": 404,
            "reason": "expired",
            "message": "This share link has expired",
        }
    organization = await ctx.db.get(link["organizationId"])
    data = {
        "html": link["htmlContent"],
        "subject": link["subject"],
        "organizationName": organization["name"] if organization else "Unknown",
        "expiresAt": link["expiresAt"],
    }
    if link.get("previewText"):
        data["previewText"] = link["previewText"]
    return {"ok": True, "data": data}
