"""Transactional emails (reference §2.3, §7.4): the templates POST /api/v1/transactional
sends, one recipient at a time, found by id or by slug.

Every save checks and renders the content as an email template's (errors name the path;
`lib/templates.py`), and checks the `slug` (unique in the organization) and the
`dataVariablesSchema` (`lib/transactional_emails.py`). Status `draft ⇄ published`; only a
published one is sent through the API. Permissions as email templates': reads, any member;
drafts (create, update, duplicate, attachments, delete), `templates:edit`; `publish`,
`unpublish` and any change to a published one (`forceWhilePublished`), `templates:manage`.

`publish` scans the content (`lib/content_scan.py`): blocked is refused, suspicious becomes
`pending_review` (not sendable, as a draft) until an admin (`templates:manage`) calls
`approve` (published, if unchanged since the scan) or `reject` (draft); `contentScan`
shows the stored findings.

Attachments go with every send: `generateAttachmentUploadUrl` gives a URL bound to the
organization (at most 10 MB), then `addAttachment` names the uploaded file; at most 10 per
email and 10 MB together (a request's own attachments count too). A file stays while any
transactional email of the organization names it (`duplicate` shares them); sends queued
when it is removed fail as ATTACHMENT_UNAVAILABLE.

Translations (`addTranslation`, `updateTranslation`, `removeTranslation`,
`setDefaultLanguage`; `lib/template_translations.py`): a send in a language the email has
gets that translation's subject and HTML, any other language the default one.

`preview` personalizes the stored rendering with given data variables; `sendTest` sends it
(drafts too) as a test send (`emails:test`, every role; the per-member quota of test sends).
"""

from __future__ import annotations

import json
from typing import Any

from owlat.app.lib import content_scans, template_translations
from owlat.app.lib.audience import PAGINATION_OPTS, clean_email, page_options
from owlat.app.lib.errors import invalid, not_found
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.sending.attachments import (
    MAX_ATTACHMENTS,
    MAX_TOTAL_BYTES,
    content_type_for,
    content_type_problem,
    filename_problem,
)
from owlat.app.lib.sending.composition import SendKind
from owlat.app.lib.sending.quotas import take_test_send
from owlat.app.lib.sending.sends import SendRequest, enqueue_send
from owlat.app.lib.sending.transactional_counts import counts_of
from owlat.app.lib.session_organization import (
    MutationContext,
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.lib.template_translations import LANGUAGE_ARGS, UPDATE_ARGS
from owlat.app.lib.templates import (
    FORCE,
    MAX_NAME,
    clean_fields,
    clean_language,
    delete_template,
    editable_template,
    find_template,
    invalid_state,
    managed_template,
    preview_view,
    save,
    summary,
    template_of,
)
from owlat.app.lib.transactional_emails import (
    TRANSACTIONAL,
    clean_schema,
    clean_slug,
    ensure_slug_free,
    find_by_slug,
    message_for,
    resolve_language,
    variable_problem,
)
from owlat.app.lib.uploads import upload_url
from owlat.app.schema import TRANSACTIONAL_STATUS, VARIABLE_TYPE
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, mutation, query, v

MAX_SEARCH = 200
ID = {"transactionalEmailId": v.string()}
FIELDS = {
    "name": v.optional(v.string()),
    "slug": v.optional(v.string()),
    "subject": v.optional(v.string()),
    "previewText": v.optional(v.string()),
    "content": v.optional(v.string()),
    "plainTextOverride": v.optional(v.string()),
    "showUnsubscribe": v.optional(v.boolean()),
    "dataVariablesSchema": v.optional(v.record(v.string(), VARIABLE_TYPE)),
}
VARIABLES = v.optional(v.record(v.string(), v.any()))


async def _changes(
    ctx: MutationCtx, organization_id: str, args: dict[str, Any], template_id: str | None
) -> dict[str, Any]:
    """The checked fields among `args` (a slug must be free)."""
    changes = clean_fields(args)
    if args.get("content") is not None:
        changes["content"] = args["content"]
    if args.get("slug") is not None:
        changes["slug"] = clean_slug(args["slug"])
        await ensure_slug_free(ctx, organization_id, changes["slug"], template_id)
    if args.get("dataVariablesSchema") is not None:
        changes["dataVariablesSchema"] = clean_schema(args["dataVariablesSchema"])
    return changes


def _view(template: dict[str, Any]) -> dict[str, Any]:
    return {k: val for k, val in template.items() if k != "searchableText"}


# -- reads -------------------------------------------------------------------------------------


@query(
    args={
        "paginationOpts": PAGINATION_OPTS,
        "search": v.optional(v.string()),
        "status": v.optional(TRANSACTIONAL_STATUS),
    }
)
async def list(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:  # shadows the builtin
    """A page of transactional emails (without content and HTML), last changed first;
    `search` finds a piece of the name or subject."""
    organization_id = await get_team_id_from_session(ctx)
    status = args.get("status")
    if status is None:
        found = ctx.db.query(TRANSACTIONAL.table).with_index(
            "by_org_updated", lambda q: q.eq("organizationId", organization_id)
        )
    else:
        found = ctx.db.query(TRANSACTIONAL.table).with_index(
            "by_org_status_updated",
            lambda q: q.eq("organizationId", organization_id).eq("status", status),
        )
    found = found.order("desc")
    search = (args.get("search") or "").strip().lower()[:MAX_SEARCH]
    if search:
        found = found.filter(lambda q: q.contains(q.field("searchableText"), search))
    result = await found.paginate(page_options(args["paginationOpts"]))
    return {**result, "page": [summary(dict(t)) for t in result["page"]]}


@query(args=ID)
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The transactional email, or None (unknown, or another organization's)."""
    organization_id = await get_team_id_from_session(ctx)
    found = await find_template(ctx, organization_id, args["transactionalEmailId"], TRANSACTIONAL)
    return None if found is None else _view(found)


@query(args=ID)
async def counts(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """`{sendCount, stats}`: sends recorded, and per outcome (sent, failed, delivered,
    opened, humanOpened, clicked, bounced, hardBounced, softBounced, complained) the sends
    that reached it, each once (`transactional_counts.py`); None for an unknown email."""
    organization_id = await get_team_id_from_session(ctx)
    found = await find_template(ctx, organization_id, args["transactionalEmailId"], TRANSACTIONAL)
    return None if found is None else await counts_of(ctx, found["_id"])


@query(args={"slug": v.string()})
async def get_by_slug(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    organization_id = await get_team_id_from_session(ctx)
    found = await find_by_slug(ctx, organization_id, args["slug"].strip())
    return None if found is None else _view(found)


@query(args={**ID, "dataVariables": VARIABLES, "language": v.optional(v.string())})
async def preview(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The email in `language` (else its default one) personalized with `dataVariables`,
    as `emailTemplates:preview` shows a template (`templates.preview_view`), and the
    `language` shown."""
    organization_id = await get_team_id_from_session(ctx)
    template = await template_of(ctx, organization_id, args["transactionalEmailId"], TRANSACTIONAL)
    language = resolve_language(template, args.get("language"), None)
    message = message_for(template, language, args.get("dataVariables") or {}, None)
    return {**(await preview_view(ctx, organization_id, template, message)), "language": language}


# -- writes ------------------------------------------------------------------------------------


@mutation(
    args={
        **FIELDS,
        "name": v.string(),
        "slug": v.string(),
        "defaultLanguage": v.optional(v.string()),
    }
)
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A new draft; returns its id."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "templates:edit")
    changes = {
        "subject": "",
        "content": "[]",
        **(await _changes(ctx, context.team_id, args, None)),
        "status": "draft",
    }
    if args.get("defaultLanguage") is not None:
        changes["defaultLanguage"] = clean_language(args["defaultLanguage"])
    created = await save(ctx, context.team_id, None, changes, context.user_id, kind=TRANSACTIONAL)
    return str(created["_id"])


@mutation(args={**ID, **FIELDS, **FORCE})
async def update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Change the fields passed ("" clears the preview text and the plain-text override);
    returns the email as stored."""
    context, template = await editable_template(ctx, args, TRANSACTIONAL)
    changes = await _changes(ctx, context.team_id, args, template["_id"])
    saved = await save(ctx, context.team_id, template, changes, context.user_id, kind=TRANSACTIONAL)
    return _view(saved)


@mutation(args=ID)
async def publish(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Render it afresh, scan it (`lib/content_scan.py`, every language) and publish it; it
    needs a subject and content. Scanned `blocked`: refused (CONTENT_BLOCKED, naming the
    heaviest findings), it stays as it was; `suspicious`: `pending_review` (the result
    stored) until an admin approves or rejects it; `clean`: published."""
    context, template = await managed_template(ctx, args, TRANSACTIONAL)
    if not template["subject"].strip():
        raise invalid_state("subject: a transactional email needs a subject to be published")
    if not json.loads(template["content"]):
        raise invalid_state("content: a transactional email needs content to be published")
    now = now_ms()
    changes = {"status": "published", "publishedAt": now}
    saved = await save(
        ctx, context.team_id, template, changes, context.user_id, trigger="publish",
        kind=TRANSACTIONAL,
    )  # fmt: skip
    result, content_hash = content_scans.scan_parts(content_scans.template_parts(saved))
    if result.level == "blocked":
        raise invalid(
            "CONTENT_BLOCKED",
            f"The content scan blocked this email (score {result.score}): {result.summary()}",
        )
    if result.level == "suspicious":
        resource: content_scans.Resource = ("transactional", saved["_id"])
        await content_scans.record(ctx, context.team_id, resource, result, content_hash, now)
        await ctx.db.patch(saved["_id"], {"status": "pending_review", "publishedAt": UNDEFINED})
        saved = {**saved, "status": "pending_review"}
        saved.pop("publishedAt")
    return _view(saved)


async def _pending_review(
    ctx: MutationCtx, args: dict[str, Any]
) -> tuple[MutationContext, dict[str, Any]]:
    """The caller (`templates:manage`) and the email, which awaits review; else refused."""
    context, template = await managed_template(ctx, args, TRANSACTIONAL)
    if template["status"] != "pending_review":
        raise invalid_state(f"The transactional email is {template['status']}, not pending review")
    return context, template


@mutation(args=ID)
async def approve(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Publish an email held for review as it was scanned (admins); an email changed since
    its scan is refused (CONTENT_CHANGED: publish it again)."""
    context, template = await _pending_review(ctx, args)
    found = await content_scans.approvable(
        ctx, context.team_id, ("transactional", template["_id"]),
        content_scans.template_parts(template),
        "The email changed since its content scan: publish it again",
    )  # fmt: skip
    now = now_ms()
    await ctx.db.patch(
        template["_id"],
        {"status": "published", "publishedAt": now, "updatedAt": now,
         "updatedBy": context.user_id},
    )  # fmt: skip
    await content_scans.review(ctx, found, "approved", context.user_id, now)


@mutation(args=ID)
async def reject(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Send an email held for review back to draft (admins)."""
    context, template = await _pending_review(ctx, args)
    now = now_ms()
    await ctx.db.patch(
        template["_id"], {"status": "draft", "updatedAt": now, "updatedBy": context.user_id}
    )
    found = await content_scans.latest(ctx, context.team_id, "transactional", template["_id"])
    if found is not None:
        await content_scans.review(ctx, found, "rejected", context.user_id, now)


@query(args=ID)
async def content_scan(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The email's latest stored content scan (`{score, level, flags: [{code, severity,
    message, where}], scannedAt, review?}`), or None (never held, or another
    organization's email)."""
    organization_id = await get_team_id_from_session(ctx)
    found = await find_template(ctx, organization_id, args["transactionalEmailId"], TRANSACTIONAL)
    if found is None:
        return None
    return content_scans.view(
        await content_scans.latest(ctx, organization_id, "transactional", found["_id"])
    )


@mutation(args=ID)
async def unpublish(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Back to draft: the API refuses to send it (the HTML stays)."""
    context, template = await managed_template(ctx, args, TRANSACTIONAL)
    if template["status"] != "published":
        raise invalid_state("The transactional email is not published")
    await ctx.db.patch(
        template["_id"], {"status": "draft", "updatedAt": now_ms(), "updatedBy": context.user_id}
    )


@mutation(args=ID)
async def duplicate(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A draft copy named "<name> (Copy)" with a free slug "<slug>-copy[-n]" and the same
    attachments; returns its id."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "templates:edit")
    template = await template_of(ctx, context.team_id, args["transactionalEmailId"], TRANSACTIONAL)
    copied = {
        k: val
        for k, val in template.items()
        if not k.startswith("_") and k not in ("publishedAt", "createdBy", "createdAt")
    }
    base = f"{template['slug'][:90]}-copy"
    slug, number = base, 1
    while await find_by_slug(ctx, context.team_id, slug) is not None:
        number += 1
        slug = f"{base}-{number}"
    copied.update(name=f"{template['name']} (Copy)"[:MAX_NAME], slug=slug, status="draft")
    created = await save(ctx, context.team_id, None, copied, context.user_id, kind=TRANSACTIONAL)
    return str(created["_id"])


@mutation(args={**ID, **FORCE})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete it, and the attachment files no other transactional email names."""
    context, template = await editable_template(ctx, args, TRANSACTIONAL)
    await delete_template(ctx, template, TRANSACTIONAL)
    for attachment in template.get("attachments") or ():
        await _release_file(ctx, context.team_id, attachment["storageId"])


# -- translations ------------------------------------------------------------------------------


@mutation(args={**ID, **LANGUAGE_ARGS})
async def add_translation(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Add a language, starting from the default language's text."""
    return _view(await template_translations.add_translation(ctx, args, TRANSACTIONAL))


@mutation(args={**ID, **UPDATE_ARGS})
async def update_translation(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Set a language's subject, preview text and block text (`{blockId: {html?,
    buttonText?, alt?}}`; the default language's subject and preview text are the email's
    own)."""
    return _view(await template_translations.update_translation(ctx, args, TRANSACTIONAL))


@mutation(args={**ID, **LANGUAGE_ARGS})
async def remove_translation(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Drop a language: sends asking for it get the default language."""
    return _view(await template_translations.remove_translation(ctx, args, TRANSACTIONAL))


@mutation(args={**ID, **LANGUAGE_ARGS})
async def set_default_language(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Make a translation the default language (the outgoing one becomes a translation)."""
    return _view(await template_translations.set_default_language(ctx, args, TRANSACTIONAL))


# -- attachments -------------------------------------------------------------------------------


@mutation(args={})
async def generate_attachment_upload_url(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A URL to POST one attachment file to (at most 10 MB; the reply holds its
    `storageId`), then `addAttachment`."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "templates:edit")
    return await upload_url(ctx, context.user_id, context.team_id, MAX_TOTAL_BYTES)


@mutation(
    args={
        **ID,
        "storageId": v.id("_storage"),
        "filename": v.string(),
        "contentType": v.optional(v.string()),
        **FORCE,
    }
)
async def add_attachment(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Attach an uploaded file of the organization to every send; returns the email."""
    context, template = await editable_template(ctx, args, TRANSACTIONAL)
    stored = await ctx.db.system.get(args["storageId"])
    if stored is None or stored.get("owner") != context.team_id:
        raise not_found("File")
    filename = args["filename"].strip()
    problem = filename_problem(filename)
    if problem is not None:
        raise invalid("INVALID_FILENAME", f"filename: {problem}")
    content_type = content_type_for(filename, args.get("contentType") or stored.get("contentType"))
    problem = content_type_problem(content_type)
    if problem is not None:
        raise invalid("INVALID_CONTENT_TYPE", f"contentType: {problem}")
    attachments = [*(template.get("attachments") or ())]
    if any(item["storageId"] == args["storageId"] for item in attachments):
        raise invalid("ALREADY_ATTACHED", "This file is attached already")
    if len(attachments) >= MAX_ATTACHMENTS:
        raise invalid("TOO_MANY_ATTACHMENTS", f"At most {MAX_ATTACHMENTS} attachments")
    size = stored["size"]
    if size + sum(item.get("size") or 0 for item in attachments) > MAX_TOTAL_BYTES:
        raise invalid("ATTACHMENTS_TOO_LARGE", "The attachments together exceed 10 MB")
    attachments.append(
        {
            "filename": filename,
            "contentType": content_type,
            "storageId": args["storageId"],
            "size": size,
        }
    )
    return await _set_attachments(ctx, context, template, attachments)


@mutation(args={**ID, "storageId": v.string(), **FORCE})
async def remove_attachment(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Take a file off the email (deleted unless another transactional email names it)."""
    context, template = await editable_template(ctx, args, TRANSACTIONAL)
    attachments = [*(template.get("attachments") or ())]
    kept = [item for item in attachments if item["storageId"] != args["storageId"]]
    if len(kept) == len(attachments):
        raise not_found("Attachment")
    saved = await _set_attachments(ctx, context, template, kept)
    await _release_file(ctx, context.team_id, args["storageId"])
    return saved


async def _set_attachments(
    ctx: MutationCtx,
    context: MutationContext,
    template: dict[str, Any],
    attachments: Any,
) -> dict[str, Any]:
    patch = {"attachments": attachments, "updatedAt": now_ms(), "updatedBy": context.user_id}
    await ctx.db.patch(template["_id"], patch)
    return _view({**template, **patch})


async def _release_file(ctx: MutationCtx, organization_id: str, storage_id: str) -> None:
    """Delete an attachment file no transactional email of the organization names."""
    named = await (
        ctx.db.query(TRANSACTIONAL.table)
        .with_index("by_org", lambda q: q.eq("organizationId", organization_id))
        .collect()
    )
    for other in named:
        if any(item["storageId"] == storage_id for item in other.get("attachments") or ()):
            return
    if await ctx.db.system.get(storage_id) is not None:
        await ctx.storage.delete(storage_id)


# -- test sends --------------------------------------------------------------------------------


@mutation(
    args={**ID, "to": v.string(), "dataVariables": VARIABLES, "language": v.optional(v.string())}
)
async def send_test(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Send it (a draft too) to `to` as a test, personalized with `dataVariables` (checked
    against its schema); the send's id (`transactionalSends:get`)."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "emails:test")
    template = await template_of(ctx, context.team_id, args["transactionalEmailId"], TRANSACTIONAL)
    variables = args.get("dataVariables") or {}
    problem = variable_problem(template.get("dataVariablesSchema") or {}, variables)
    if problem is not None:
        raise invalid("INVALID_VARIABLES", problem)
    to = clean_email(args["to"])
    await take_test_send(ctx, context.user_id)
    language = resolve_language(template, args.get("language"), None)
    message = message_for(template, language, variables, None)
    return await enqueue_send(
        ctx,
        SendRequest(
            organization_id=context.team_id,
            kind=SendKind.TEST,
            to=to,
            subject=message.subject,
            text=message.text,
            html=message.html,
            transactional_email_id=template["_id"],
            language=language,
            data_variables=variables,
            attachments=template.get("attachments") or (),
            created_by=context.user_id,
        ),
    )
