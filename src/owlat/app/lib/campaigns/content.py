"""What a campaign sends, fixed when sending starts (reference §11.2.5, §11.3).

`snapshot` (in the mutation that starts sending) copies the template's rendered fields
into `campaignContents`, one row per variant: "A" with the campaign's subject (if set),
and for an A/B test "B", with `variantBSubject` (subject test) or variant B's template
(content test). Later edits of a template do not change a running campaign's messages;
delivery composes from these rows (`templates_for`, `template_of`).

Archive ("view in browser"): when the campaign has `archiveEnabled`, `snapshot` gives it a
random 24-character `archiveToken`, and every message starts with a "View in browser"
link: `{base}/archive?token={token}&s={sendId}.{sig}` (`sig` an HMAC of the send's id with
the instance secret, `view_url`), filled in per recipient through the `viewInBrowserUrl`
variable (`send_variables`). `archive_page` renders the page: with a valid `s`, the
message as that recipient got it (their variables, their unsubscribe footer and links,
which work as in the mail), without open pixel or click rewriting (viewing counts no open);
without one, the campaign's content with every placeholder at its fallback (upstream's
snapshot), without unsubscribe footer. A campaign without `archiveEnabled`, or one not
sent (draft, scheduled), has no page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from owlat.app.lib import instance
from owlat.app.lib.audience import property_definitions
from owlat.app.lib.rendering import contact_variables
from owlat.app.lib.tokens import derived_token, random_token, same_secret
from owlat.app.lib.transactional_emails import message_for, resolve_language
from owlat.runtime import MutationCtx, QueryCtx

TEMPLATE_FIELDS = (
    "name", "subject", "previewText", "htmlContent", "plainTextContent", "htmlTranslations",
    "defaultLanguage", "supportedLanguages", "variables",
)  # fmt: skip
ARCHIVE_PATH = "/archive/"
ARCHIVE_TOKEN_LENGTH = 24
VIEW_VARIABLE = "viewInBrowserUrl"
_BODY_START = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_VIEW_LINK = (
    '<p style="font-family:Arial,sans-serif;font-size:12px;color:#6b7280;text-align:center;'
    'margin:0;padding:8px">'
    f'<a href="{{{{{VIEW_VARIABLE}}}}}" style="color:#6b7280">View in browser</a></p>'
)


def _with_view_link(fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` whose HTML (every language) starts with the view-in-browser link and whose
    text starts with its URL."""

    def body(source: str) -> str:
        found = _BODY_START.search(source)
        at = 0 if found is None else found.end()
        return source[:at] + _VIEW_LINK + source[at:]

    def text(source: str) -> str:
        return f"View in browser: {{{{{VIEW_VARIABLE}}}}}\n\n{source}"

    fields["htmlContent"] = body(fields.get("htmlContent") or "")
    fields["plainTextContent"] = text(fields.get("plainTextContent") or "")
    if fields.get("htmlTranslations"):
        translations = json.loads(fields["htmlTranslations"])
        for rendered in translations.values():
            rendered["htmlContent"] = body(rendered["htmlContent"])
            rendered["plainTextContent"] = text(rendered["plainTextContent"])
        fields["htmlTranslations"] = json.dumps(translations)
    return fields


async def snapshot(ctx: MutationCtx, campaign: Mapping[str, Any], now: float) -> None:
    """Copy what the campaign sends (module docstring); preflight passed."""
    campaign_id, organization_id = campaign["_id"], campaign["organizationId"]
    archived = bool(campaign.get("archiveEnabled"))
    config = campaign.get("abTestConfig") if campaign.get("isABTest") else None
    variants = [("A", campaign["emailTemplateId"], campaign.get("subject"))]
    if config is not None:
        variants.append(
            ("B", config.get("variantBTemplateId") or campaign["emailTemplateId"],
             config.get("variantBSubject") or campaign.get("subject"))
        )  # fmt: skip
    for variant, template_id, subject in variants:
        template = await ctx.db.get(template_id)
        assert template is not None, template_id  # preflight checked it
        fields = {name: template[name] for name in TEMPLATE_FIELDS if name in template}
        if subject:
            fields["subject"] = subject
        if archived:
            fields = _with_view_link(fields)
        await ctx.db.insert(
            "campaignContents",
            {"organizationId": organization_id, "campaignId": campaign_id,
             "variant": variant, "templateId": template_id, "template": fields,
             "createdAt": now},
        )  # fmt: skip
    if archived and not campaign.get("archiveToken"):
        await ctx.db.patch(campaign_id, {"archiveToken": random_token(ARCHIVE_TOKEN_LENGTH)})


async def templates_for(ctx: QueryCtx, campaign_id: str) -> dict[str, dict[str, Any]]:
    """The campaign's snapshot, by variant."""
    rows = await (
        ctx.db.query("campaignContents")
        .with_index("by_campaign", lambda q: q.eq("campaignId", campaign_id))
        .collect()
    )
    return {row["variant"]: dict(row["template"]) for row in rows}


def template_of(batch: Mapping[str, Any], claimed: Mapping[str, Any]) -> dict[str, Any] | None:
    """The template fields of a claimed send's variant in a claimed batch."""
    variants: Mapping[str, Any] = batch.get("variants") or {}
    found = variants.get(claimed.get("variant") or "A")
    return None if found is None else dict(found)


def _view_signature(send_id: str) -> str:
    return derived_token(instance.current().secret, "campaign archive view", send_id)


def archive_url(token: str) -> str:
    """The archive page's address (`archive_routes.py`), for nobody in particular."""
    return f"{instance.current().base_url.rstrip('/')}/archive?token={quote(token, safe='')}"


def view_url(token: str, send_id: str) -> str:
    """The archive page as the recipient of `send_id` got the message."""
    return f"{archive_url(token)}&s={send_id}.{_view_signature(send_id)}"


def send_variables(campaign: Mapping[str, Any], send: Mapping[str, Any]) -> dict[str, str]:
    """The per-send variables a campaign message adds to the contact's: its view URL."""
    token = campaign.get("archiveToken")
    return {} if not token else {VIEW_VARIABLE: view_url(token, send["_id"])}


def _verified_send(ctx: QueryCtx, signed: str | None) -> str | None:
    send_id, dot, signature = (signed or "").partition(".")
    if not dot or not same_secret(signature, _view_signature(send_id)):
        return None
    return ctx.db.normalize_id("emailSends", send_id)


async def archive_page(ctx: QueryCtx, token: str, signed_send: str | None) -> dict[str, Any] | None:
    """The archive of the campaign whose token is `token`, as `{html, subject, sentAt,
    organizationName}` for the recipient of the signed send (else for nobody), or None."""
    campaign = await (
        ctx.db.query("campaigns")
        .with_index("by_archive_token", lambda q: q.eq("archiveToken", token))
        .first()
    )
    if campaign is None or not campaign.get("archiveEnabled") or "sentAt" not in campaign:
        return None
    send_id = _verified_send(ctx, signed_send)
    send = None if send_id is None else await ctx.db.get(send_id)
    if send is not None and send["campaignId"] != campaign["_id"]:
        send = None
    contact = None if send is None else await ctx.db.get(send["contactId"])
    templates = await templates_for(ctx, campaign["_id"])
    variant = (send or {}).get("abVariant") or campaign.get("abWinner") or "A"
    template = templates.get(variant)
    if template is None:
        return None
    template["showUnsubscribe"] = contact is not None and campaign["audience"]["kind"] == "list"
    variables: dict[str, Any] = {}
    if contact is not None:
        definitions = await property_definitions(ctx, campaign["organizationId"])
        dates = [key for key, row in definitions.items() if row["type"] == "date"]
        variables = {"email": contact["email"], **contact_variables(contact, date_keys=dates)}
    variables[VIEW_VARIABLE] = archive_url(token)
    language = resolve_language(template, None, (contact or {}).get("language"))
    message = message_for(
        template, language, variables, None if contact is None else contact["_id"]
    )
    organization = await ctx.db.get(campaign["organizationId"])
    return {
        "html": message.html,
        "subject": message.subject,
        "sentAt": campaign["sentAt"],
        "organizationName": organization["name"] if organization else "Unknown",
    }
