"""Email templates: render and store (the logic behind `email_templates.py`).

Saving (create, update, translation changes, restore, publish) goes through `save`:
1. the content is checked (`rendering.validate_content`; the error names the path, as
   `content[3].columns[1][0].url: must be an http(s), mailto: or tel: URL`), and so are
   name, subject, preview text and the plain-text override;
2. every `savedBlockRef` must name a saved block of the organization (else the error names
   the reference's path); references to blocks being deleted are dropped, and the groups
   of the others take their saved block's current blocks (`block_tree.py`);
3. the default language and every translation are rendered with the organization's theme
   (`organizationSettings.brandTheme`) into `htmlContent`/`plainTextContent` and
   `htmlTranslations`: placeholders and condition markers stay, senders personalize per
   recipient (`stored_rendering`);
4. `linkedBlockIds` is what the content links, each saved block's `usageCount` follows,
   `htmlRenderState` is fresh, and a version is captured (`template_versions.py`).
A failure at any step leaves the template as it was.

`rerender` does 2–4 (no version) for a template whose saved blocks changed
(`saved_blocks.py`); a template that no longer renders keeps its HTML and records the
failure in `htmlRenderState`.

Email templates and transactional emails are rendered templates alike (`RENDERED_TEMPLATE`
in the schema); a `TemplateKind` names the table, the argument that names one, and what
belongs to one (versions, share links). Only email templates keep versions.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from owlat.app.lib.audience import organization_settings
from owlat.app.lib.block_tree import (
    SavedBlock,
    merge_translation,
    saved_block_refs,
    strip_saved_blocks,
    sync_saved_blocks,
)
from owlat.app.lib.errors import AuthFailure, invalid, not_found
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.rendering import (
    InvalidContent,
    Message,
    RenderedTemplate,
    Theme,
    render_template,
    validate_content,
)
from owlat.app.lib.rendering.variables import malformed_placeholder
from owlat.app.lib.session_organization import MutationContext, get_mutation_context, now_ms
from owlat.app.lib.template_versions import capture_version
from owlat.runtime import UNDEFINED, LimitExceededError, MutationCtx, QueryCtx, v

CONTENT_BLOCK_VERSION = 1  # the block model's version (upstream's contentBlockVersion)
RENDERER_VERSION = 1  # bumped when the renderer's output changes
MAX_NAME = 200
MAX_SUBJECT = 1000
MAX_PREVIEW_TEXT = 1000
MAX_PLAIN_TEXT = 200_000
MAX_LANGUAGES = 20
LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,2}$")
# Whom previews and share links are personalized for, unless a contact is chosen.
SAMPLE_CONTACT = {"email": "jane.doe@example.com", "firstName": "Jane", "lastName": "Doe"}
_DARK_MEDIA = "@media (prefers-color-scheme:dark){"
_COLOR_SCHEME = 'content="light dark"'  # the renderer's color-scheme meta tags
# Fields `summary` leaves out of lists (large, or internal).
HEAVY_FIELDS = (
    "content",
    "htmlContent",
    "plainTextContent",
    "plainTextOverride",
    "translations",
    "htmlTranslations",
    "searchableText",
)


@dataclasses.dataclass(frozen=True)
class TemplateKind:
    """A table of rendered templates."""

    table: str
    id_arg: str  # the argument naming one (`templateId`, `transactionalEmailId`)
    label: str  # "<label> not found"
    versioned: bool  # saves capture versions (`emailTemplateVersions`)
    # (table, index, field) of the rows deleted with one
    dependents: tuple[tuple[str, str, str], ...] = ()


EMAIL_TEMPLATES = TemplateKind(
    "emailTemplates",
    "templateId",
    "Template",
    versioned=True,
    dependents=(
        ("emailTemplateVersions", "by_template", "templateId"),
        ("shareLinks", "by_template", "emailTemplateId"),
    ),
)


def invalid_state(message: str) -> AuthFailure:
    return AuthFailure("INVALID_STATE", message)


def compact_json(value: Any) -> str:
    """`value` as the compact JSON stored in content fields."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- reading -----------------------------------------------------------------------------------


async def find_template(
    ctx: QueryCtx, organization_id: str, template_id: str, kind: TemplateKind = EMAIL_TEMPLATES
) -> dict[str, Any] | None:
    normalized = ctx.db.normalize_id(kind.table, template_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id:
        return None
    return dict(found)


async def template_of(
    ctx: QueryCtx, organization_id: str, template_id: str, kind: TemplateKind = EMAIL_TEMPLATES
) -> dict[str, Any]:
    """The organization's template, or "Template not found"."""
    found = await find_template(ctx, organization_id, template_id, kind)
    if found is None:
        raise not_found(kind.label)
    return found


def summary(template: Mapping[str, Any]) -> dict[str, Any]:
    """A template without its content and rendered HTML (what lists show)."""
    return {k: v for k, v in template.items() if k not in HEAVY_FIELDS}


async def theme_of(ctx: QueryCtx, organization_id: str) -> Theme:
    settings = await organization_settings(ctx, organization_id)
    return Theme.from_settings((settings or {}).get("brandTheme"))


def translations_of(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The stored translations: {lang: {subject, previewText?, blocks}}."""
    raw = template.get("translations")
    return dict(json.loads(raw)) if raw else {}


def default_language(template: Mapping[str, Any]) -> str:
    return str(template.get("defaultLanguage") or "en")


def stored_rendering(template: Mapping[str, Any], language: str | None = None) -> RenderedTemplate:
    """The template as rendered on its last save, in `language` if it has that translation
    (else the default language), ready for `rendering.compile_template`."""
    subject, preheader = template["subject"], template.get("previewText") or ""
    html, text = template.get("htmlContent") or "", template.get("plainTextContent") or ""
    translated = json.loads(template.get("htmlTranslations") or "{}").get(language or "")
    if translated is not None:
        html, text = translated["htmlContent"], translated["plainTextContent"]
        subject, preheader = translated["subject"], translated.get("previewText") or ""
    return RenderedTemplate(
        html=html,
        text=text,
        subject=subject,
        preheader=preheader,
        variables=tuple(template.get("variables") or ()),
    )


MOBILE_WIDTH = 375


async def preview_view(
    ctx: QueryCtx, organization_id: str, template: Mapping[str, Any], message: Message
) -> dict[str, Any]:
    """What a preview shows of a personalized `message` of `template`: its subject, HTML
    (as sent, and forced light and dark), text, the placeholders without a value
    (`missing`), the desktop and mobile widths and whether the stored rendering is stale."""
    theme = await theme_of(ctx, organization_id)
    return {
        "subject": message.subject,
        "html": message.html,
        "darkHtml": dark_preview(message.html),
        "lightHtml": light_preview(message.html),
        "text": message.text,
        "missing": [*message.missing],
        "widths": {"desktop": theme.base_width, "mobile": MOBILE_WIDTH},
        "stale": (template.get("htmlRenderState") or {}).get("stale", False),
    }


def dark_preview(html: str) -> str:
    """`html` as a client in dark mode shows it: the renderer's dark-mode rules (its
    `prefers-color-scheme: dark` media query) apply unconditionally."""
    return _color_scheme(html, "@media all{", "dark")


def light_preview(html: str) -> str:
    """`html` as a client in light mode shows it, whatever the viewer's own preference: a
    preview frame follows the operating system's dark mode, which would apply the
    dark-mode rules to the light preview too."""
    return _color_scheme(html, "@media not all{", "light")


def _color_scheme(html: str, media: str, scheme: str) -> str:
    return html.replace(_DARK_MEDIA, media).replace(_COLOR_SCHEME, f'content="{scheme}"', 2)


# -- who may change it -------------------------------------------------------------------------

FORCE = {"forceWhilePublished": v.optional(v.boolean())}


async def editable_template(
    ctx: QueryCtx, args: Mapping[str, Any], kind: TemplateKind = EMAIL_TEMPLATES
) -> tuple[MutationContext, dict[str, Any]]:
    """The caller (`templates:edit`) and the template `args[kind.id_arg]`; a published
    one needs `args["forceWhilePublished"]` and `templates:manage`."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "templates:edit")
    template = await template_of(ctx, context.team_id, args[kind.id_arg], kind)
    if template["status"] == "published":
        if not args.get("forceWhilePublished"):
            raise invalid_state(
                f"The {kind.label.lower()} is published: unpublish it first, or pass "
                "forceWhilePublished"
            )
        require_permission(context.role, "templates:manage")
    return context, template


async def managed_template(
    ctx: QueryCtx, args: Mapping[str, Any], kind: TemplateKind = EMAIL_TEMPLATES
) -> tuple[MutationContext, dict[str, Any]]:
    """The caller (`templates:manage`) and the template `args[kind.id_arg]`."""
    context = await get_mutation_context(ctx)
    require_permission(context.role, "templates:manage")
    return context, await template_of(ctx, context.team_id, args[kind.id_arg], kind)


# -- checking ----------------------------------------------------------------------------------


def clean_text(value: str, field: str, limit: int, *, required: bool = False) -> str:
    """`value` trimmed, at most `limit` characters, with well-formed placeholders."""
    value = value.strip()
    if required and not value:
        raise invalid("INVALID_INPUT", f"{field}: must not be empty")
    if len(value) > limit:
        raise invalid("INVALID_INPUT", f"{field}: must be at most {limit:,} characters")
    bad = malformed_placeholder(value)
    if bad is not None:
        raise invalid(
            "INVALID_INPUT",
            f"{field}: {bad[:60]!r} is not a placeholder ({{{{name}}}} or {{{{name|'fallback'}}}})",
        )
    return value


def clean_fields(args: Mapping[str, Any]) -> dict[str, Any]:
    """The template fields among `args`, checked (name, subject, previewText,
    plainTextOverride, showUnsubscribe, type); "" clears the optional texts."""
    changes: dict[str, Any] = {}
    if args.get("name") is not None:
        changes["name"] = clean_text(args["name"], "name", MAX_NAME, required=True)
    if args.get("subject") is not None:
        changes["subject"] = clean_text(args["subject"], "subject", MAX_SUBJECT)
    for field, limit in (("previewText", MAX_PREVIEW_TEXT), ("plainTextOverride", MAX_PLAIN_TEXT)):
        if args.get(field) is not None:
            changes[field] = clean_text(args[field], field, limit) or None
    for field in ("showUnsubscribe", "type"):
        if args.get(field) is not None:
            changes[field] = args[field]
    return changes


def clean_language(code: str) -> str:
    code = code.strip()
    if not LANGUAGE.match(code):
        raise invalid(
            "INVALID_LANGUAGE", f"language: {code[:20]!r} is not a language code (de, pt-BR)"
        )
    return code


# -- saving ------------------------------------------------------------------------------------


async def _saved_blocks(
    ctx: QueryCtx, organization_id: str, ids: Iterable[str]
) -> tuple[dict[str, SavedBlock], set[str], set[str]]:
    """Of the saved block `ids`: the live ones, those being deleted, and unknown ones (not
    ids, gone, or another organization's)."""
    live: dict[str, SavedBlock] = {}
    deleted: set[str] = set()
    unknown: set[str] = set()
    for block_id in set(ids):
        normalized = ctx.db.normalize_id("emailBlocks", block_id)
        block = None if normalized is None else await ctx.db.get(normalized)
        if block is None or block["organizationId"] != organization_id:
            unknown.add(block_id)
        elif block.get("deletedAt") is not None:
            deleted.add(block_id)
        else:
            live[block_id] = SavedBlock(block["name"], json.loads(block["content"]))
    return live, deleted, unknown


def _render(
    blocks: list[Any], subject: str, preview_text: str, theme: Theme, lang: str, text: str | None
) -> RenderedTemplate:
    return render_template(
        validate_content(blocks),
        subject=subject,
        preheader=preview_text,
        theme=theme,
        text=text,
        lang=lang,
    )


def render_fields(template: Mapping[str, Any], blocks: list[Any], theme: Theme) -> dict[str, Any]:
    """The rendered fields of `template` whose (synced) content is `blocks`; an
    `InvalidContent` names the path (in a translation: `translations.<lang>.content[...]`)."""
    language = default_language(template)
    rendered = _render(
        blocks,
        template["subject"],
        template.get("previewText") or "",
        theme,
        language,
        template.get("plainTextOverride"),
    )
    html_translations: dict[str, dict[str, Any]] = {}
    for lang, overlay in translations_of(template).items():
        try:
            translated = _render(
                merge_translation(blocks, overlay.get("blocks") or {}),
                overlay.get("subject") or template["subject"],
                overlay.get("previewText") or "",
                theme,
                lang,
                None,
            )
        except InvalidContent as error:
            raise InvalidContent(f"translations.{lang}.{error.path}", error.reason) from None
        html_translations[lang] = {
            "htmlContent": translated.html,
            "plainTextContent": translated.text,
            "subject": translated.subject,
            "previewText": translated.preheader or None,
        }
    return {
        "content": compact_json(blocks),
        "htmlContent": rendered.html,
        "plainTextContent": rendered.text,
        "htmlTranslations": compact_json(html_translations) if html_translations else None,
        "supportedLanguages": [language, *html_translations],
        "variables": list(rendered.variables),
        "contentBlockVersion": CONTENT_BLOCK_VERSION,
        "rendererVersion": RENDERER_VERSION,
        "htmlRenderState": {"stale": False, "failureCount": 0},
    }


async def _content(
    ctx: QueryCtx, template: Mapping[str, Any], *, strict: bool
) -> tuple[list[Any], list[str]]:
    """The template's content with saved blocks synced, and the ids it links. `strict`
    (a save): a reference to an unknown block is an error naming its path; else it stays."""
    blocks = json.loads(template["content"])
    refs = saved_block_refs(blocks)
    live, deleted, unknown = await _saved_blocks(
        ctx, template["organizationId"], (block_id for _, block_id in refs)
    )
    if strict:
        for path, block_id in refs:
            if block_id in unknown:
                raise InvalidContent(path, "is not a saved block of this organization")
    if deleted:
        blocks = strip_saved_blocks(blocks, deleted)
    linked = list(dict.fromkeys(block_id for _, block_id in refs if block_id in live))
    return sync_saved_blocks(blocks, live), linked


async def _adjust_usage(ctx: MutationCtx, before: Iterable[str], after: Iterable[str]) -> None:
    old, new = set(before), set(after)
    for block_id, step in [*((b, 1) for b in new - old), *((b, -1) for b in old - new)]:
        block = await ctx.db.get(block_id)
        if block is not None:
            await ctx.db.patch(block_id, {"usageCount": max(0, block["usageCount"] + step)})


async def _write(
    ctx: MutationCtx,
    template_id: str | None,
    fields: dict[str, Any],
    table: str = EMAIL_TEMPLATES.table,
) -> str:
    """Insert into `table` (`template_id` None) or patch a template; one too large to store
    (content, rendered HTML and translations past the document limit) is `InvalidContent`."""
    try:
        if template_id is None:
            return str(await ctx.db.insert(table, fields))
        await ctx.db.patch(template_id, fields)
    except LimitExceededError as error:
        raise InvalidContent(
            "content", f"too large to store with its rendered HTML and translations ({error})"
        ) from None
    return template_id


def _stored(patch: dict[str, Any]) -> dict[str, Any]:
    """`patch` for `db.patch`: None removes an optional field."""
    return {k: UNDEFINED if v is None else v for k, v in patch.items()}


async def save(
    ctx: MutationCtx,
    organization_id: str,
    template: dict[str, Any] | None,
    changes: Mapping[str, Any],
    user_id: str,
    *,
    trigger: str = "save",
    kind: TemplateKind = EMAIL_TEMPLATES,
) -> dict[str, Any]:
    """Create (`template` None) or change a template as the module docstring says; returns
    it as stored. `changes` hold checked fields (`clean_fields`), `content` as JSON text."""
    now = now_ms()
    merged: dict[str, Any] = dict(template or {})
    merged.update(changes)
    merged["organizationId"] = organization_id
    if "content" in changes:
        validate_content(changes["content"])
    content, linked = await _content(ctx, merged, strict=True)
    merged.update(render_fields(merged, content, await theme_of(ctx, organization_id)))
    merged.update(
        linkedBlockIds=linked,
        searchableText=f"{merged['name']}\n{merged['subject']}".lower(),
        updatedBy=user_id,
        updatedAt=now,
    )
    await _adjust_usage(ctx, (template or {}).get("linkedBlockIds") or (), linked)
    if template is None:
        merged.update(createdBy=user_id, createdAt=now)
        fields = {k: v for k, v in merged.items() if v is not None}
        merged["_id"] = await _write(ctx, None, fields, kind.table)
    else:
        patch = {k: v for k, v in merged.items() if not k.startswith("_")}
        await _write(ctx, template["_id"], _stored(patch))
    if kind.versioned:
        await capture_version(ctx, merged, trigger, user_id)
    return {k: v for k, v in merged.items() if v is not None}


async def rerender(ctx: MutationCtx, template: dict[str, Any]) -> bool:
    """Sync the template's saved blocks and render it again (no version); False if it does
    not render any more (then `htmlRenderState` records why, and the HTML stays)."""
    try:
        content, linked = await _content(ctx, template, strict=False)
        patch = render_fields(template, content, await theme_of(ctx, template["organizationId"]))
        await _write(ctx, template["_id"], _stored({**patch, "linkedBlockIds": linked}))
    except InvalidContent as error:
        state = template.get("htmlRenderState") or {}
        await ctx.db.patch(
            template["_id"],
            {
                "htmlRenderState": {
                    "stale": True,
                    "failureCount": int(state.get("failureCount", 0)) + 1,
                    "lastFailureAt": now_ms(),
                    "error": str(error)[:1000],
                }
            },
        )
        return False
    await _adjust_usage(ctx, template.get("linkedBlockIds") or (), linked)
    return True


async def delete_template(
    ctx: MutationCtx, template: Mapping[str, Any], kind: TemplateKind = EMAIL_TEMPLATES
) -> None:
    """Delete a template with what belongs to it (versions, share links: `kind.dependents`);
    saved blocks count one use less."""
    for table, index, field in kind.dependents:
        for row in await _of_template(ctx, table, index, field, template["_id"]):
            await ctx.db.delete(row["_id"])
    await _adjust_usage(ctx, template.get("linkedBlockIds") or (), ())
    await ctx.db.delete(template["_id"])


async def _of_template(
    ctx: QueryCtx, table: str, index: str, field: str, template_id: str
) -> list[dict[str, Any]]:
    """The rows of `table` whose `field` names the template (through `index`)."""
    return await ctx.db.query(table).with_index(index, lambda q: q.eq(field, template_id)).collect()
