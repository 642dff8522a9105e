"""Email templates (reference §7.4): drafts, publishing, translations, previews.

Every save checks the content (errors name the path), renders it server-side with the
organization's theme and captures a version (`lib/templates.py`, `lib/template_versions.py`).
Status `draft ⇄ published`. Permissions: reads, any member; drafts (create, update,
duplicate, translations, delete), `templates:edit` (editors too); `publish`/`unpublish` and
any change to a published template (which needs `forceWhilePublished`, else "The template
is published"), `templates:manage` (admins).

Translations: `addTranslation` starts a language from the default language's text;
`updateTranslation` sets its subject, preview text and per-block text (`{blockId: {html?,
buttonText?, alt?}}`); `setDefaultLanguage` swaps a translation with the default;
`getForLanguage` answers a language's subject, preview text, content and HTML.

`preview` personalizes the stored rendering for a contact of the organization (or a sample
contact): `html` (responsive: show it at `widths.desktop` and `widths.mobile`), `darkHtml`
(the dark-mode rules applied unconditionally, as a dark-mode client shows it), `text`,
`lightHtml` (the light version whatever the viewer's dark mode: a preview frame follows
the operating system's), `subject` and the placeholders that had no value.
"""

from __future__ import annotations

import json
from typing import Any

from owlat.app.lib import template_translations
from owlat.app.lib.audience import (
    PAGINATION_OPTS,
    live_document,
    page_options,
    property_definitions,
)
from owlat.app.lib.block_tree import merge_translation
from owlat.app.lib.errors import not_found
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.rendering import compile_template, contact_variables, personalize
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.lib.template_translations import LANGUAGE_ARGS, UPDATE_ARGS
from owlat.app.lib.templates import (
    EMAIL_TEMPLATES,
    FORCE,
    MAX_NAME,
    SAMPLE_CONTACT,
    clean_fields,
    clean_language,
    compact_json,
    default_language,
    delete_template,
    editable_template,
    find_template,
    invalid_state,
    managed_template,
    preview_view,
    save,
    stored_rendering,
    summary,
    template_of,
    translations_of,
)
from owlat.app.schema import TEMPLATE_STATUS, TEMPLATE_TYPE
from owlat.runtime import MutationCtx, QueryCtx, mutation, query, v

MAX_SEARCH = 200
TEMPLATE_ID = {"templateId": v.string()}
FIELDS = {
    "name": v.optional(v.string()),
    "subject": v.optional(v.string()),
    "previewText": v.optional(v.string()),
    "content": v.optional(v.string()),
    "plainTextOverride": v.optional(v.string()),
    "showUnsubscribe": v.optional(v.boolean()),
}


# -- reads -------------------------------------------------------------------------------------


@query(
    args={
        "paginationOpts": PAGINATION_OPTS,
        "search": v.optional(v.string()),
        "type": v.optional(TEMPLATE_TYPE),
        "status": v.optional(TEMPLATE_STATUS),
    }
)
async def list(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:  # shadows the builtin
    """A page of templates (without content and HTML), last changed first; `search` finds
    a piece of the name or subject (case-insensitive)."""
    organization_id = await get_team_id_from_session(ctx)
    kind, status = args.get("type"), args.get("status")
    if kind is not None:
        index, key = "by_org_type_updated", ("type", kind)
    elif status is not None:
        index, key = "by_org_status_updated", ("status", status)
    else:
        index, key = "by_org_updated", None

    def scope(q: Any) -> Any:
        q = q.eq("organizationId", organization_id)
        return q if key is None else q.eq(*key)

    found = ctx.db.query("emailTemplates").with_index(index, scope).order("desc")
    search = (args.get("search") or "").strip().lower()[:MAX_SEARCH]
    if kind is not None and status is not None:
        found = found.filter(lambda q: q.eq(q.field("status"), status))
    if search:
        found = found.filter(lambda q: q.contains(q.field("searchableText"), search))
    result = await found.paginate(page_options(args["paginationOpts"]))
    return {**result, "page": [summary(dict(t)) for t in result["page"]]}


@query(args=TEMPLATE_ID)
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The template, or None (unknown, or another organization's)."""
    organization_id = await get_team_id_from_session(ctx)
    found = await find_template(ctx, organization_id, args["templateId"])
    return None if found is None else {k: v for k, v in found.items() if k != "searchableText"}


@query(args={**TEMPLATE_ID, "language": v.optional(v.string())})
async def get_for_language(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The template in `language` (its translation's subject, preview text, content and
    HTML; the default language's when it has no such translation), or None."""
    organization_id = await get_team_id_from_session(ctx)
    template = await find_template(ctx, organization_id, args["templateId"])
    if template is None:
        return None
    language = args.get("language") or default_language(template)
    overlay = translations_of(template).get(language)
    rendered = stored_rendering(template, language)
    resolved = {**template, "language": default_language(template)}
    if overlay is not None:
        content = merge_translation(json.loads(template["content"]), overlay.get("blocks") or {})
        resolved.update(
            language=language,
            subject=overlay.get("subject") or template["subject"],
            previewText=overlay.get("previewText"),
            content=compact_json(content),
            htmlContent=rendered.html,
            plainTextContent=rendered.text,
        )
    return {k: v for k, v in resolved.items() if k != "searchableText"}


@query(
    args={**TEMPLATE_ID, "language": v.optional(v.string()), "contactId": v.optional(v.string())}
)
async def preview(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The template personalized for a contact (`contactId`) or a sample contact; see the
    module docstring."""
    organization_id = await get_team_id_from_session(ctx)
    template = await template_of(ctx, organization_id, args["templateId"])
    variables: dict[str, Any] = dict(SAMPLE_CONTACT)
    if args.get("contactId") is not None:
        contact = await live_document(ctx, "contacts", organization_id, args["contactId"])
        if contact is None:
            raise not_found("Contact")
        definitions = await property_definitions(ctx, organization_id)
        dates = [key for key, d in definitions.items() if d["type"] == "date"]
        variables = contact_variables(contact, date_keys=dates)
    message = personalize(
        compile_template(stored_rendering(template, args.get("language"))), variables
    )
    return await preview_view(ctx, organization_id, template, message)


# -- writes ------------------------------------------------------------------------------------


@mutation(
    args={
        **FIELDS,
        "name": v.string(),
        "type": TEMPLATE_TYPE,
        "defaultLanguage": v.optional(v.string()),
    }
)
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A new draft; returns its id."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "templates:edit")
    changes = {"subject": "", "content": "[]", **clean_fields(args), "status": "draft"}
    if args.get("content") is not None:
        changes["content"] = args["content"]
    if args.get("defaultLanguage") is not None:
        changes["defaultLanguage"] = clean_language(args["defaultLanguage"])
    created = await save(ctx, context.team_id, None, changes, context.user_id)
    return str(created["_id"])


@mutation(args={**TEMPLATE_ID, **FIELDS, "type": v.optional(TEMPLATE_TYPE), **FORCE})
async def update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Change the fields passed ("" clears the preview text and the plain-text override);
    returns the template as stored."""
    context, template = await editable_template(ctx, args)
    changes = clean_fields(args)
    if args.get("content") is not None:
        changes["content"] = args["content"]
    return await save(ctx, context.team_id, template, changes, context.user_id)


@mutation(args=TEMPLATE_ID)
async def publish(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Render the template afresh and publish it (a `publish` version); it needs a subject."""
    context, template = await managed_template(ctx, args)
    if not template["subject"].strip():
        raise invalid_state("subject: a template needs a subject to be published")
    changes = {"status": "published", "publishedAt": now_ms()}
    return await save(ctx, context.team_id, template, changes, context.user_id, trigger="publish")


@mutation(args=TEMPLATE_ID)
async def unpublish(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Back to draft (the HTML stays)."""
    context, template = await managed_template(ctx, args)
    if template["status"] != "published":
        raise invalid_state("The template is not published")
    await ctx.db.patch(
        template["_id"], {"status": "draft", "updatedAt": now_ms(), "updatedBy": context.user_id}
    )


@mutation(args=TEMPLATE_ID)
async def duplicate(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A draft copy named "<name> (Copy)"; returns its id."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "templates:edit")
    template = await template_of(ctx, context.team_id, args["templateId"])
    copied = {
        k: val
        for k, val in template.items()
        if not k.startswith("_") and k not in ("publishedAt", "createdBy", "createdAt")
    }
    copied.update(name=f"{template['name']} (Copy)"[:MAX_NAME], status="draft")
    created = await save(ctx, context.team_id, None, copied, context.user_id)
    return str(created["_id"])


@mutation(args={**TEMPLATE_ID, **FORCE})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete the template with its versions and share links."""
    _, template = await editable_template(ctx, args)
    await delete_template(ctx, template)


# -- translations ------------------------------------------------------------------------------


@mutation(args={**TEMPLATE_ID, **LANGUAGE_ARGS})
async def add_translation(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Add a language, starting from the default language's text."""
    return await template_translations.add_translation(ctx, args, EMAIL_TEMPLATES)


@mutation(args={**TEMPLATE_ID, **UPDATE_ARGS})
async def update_translation(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Set a language's subject, preview text and block text (the default language's
    subject and preview text are the template's own)."""
    return await template_translations.update_translation(ctx, args, EMAIL_TEMPLATES)


@mutation(args={**TEMPLATE_ID, **LANGUAGE_ARGS})
async def remove_translation(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    return await template_translations.remove_translation(ctx, args, EMAIL_TEMPLATES)


@mutation(args={**TEMPLATE_ID, **LANGUAGE_ARGS})
async def set_default_language(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Make a translation the default language: its text goes into the content, and the
    outgoing default language becomes a translation."""
    return await template_translations.set_default_language(ctx, args, EMAIL_TEMPLATES)
