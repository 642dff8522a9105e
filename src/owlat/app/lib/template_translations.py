"""A rendered template's translations (reference §2.3 `translations`), for email templates
and transactional emails alike (`templates.TemplateKind`).

A translation is `{subject, previewText?, blocks}` under a language code (`LANGUAGE` in
`templates.py`: `de`, `pt-BR`), `blocks` being per-block text (`{blockId: {html?,
buttonText?, alt?}}`) laid over the default language's content. Every change saves the
template through `templates.save`, which renders each language into `htmlTranslations`
and lists them in `supportedLanguages` (a block text that does not render is refused with
its path, `translations.<lang>.content[...]`). Who may: as any change of the template
(`templates.editable_template`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from owlat.app.lib.block_tree import block_ids, merge_translation, translatable_text
from owlat.app.lib.errors import invalid, not_found
from owlat.app.lib.session_organization import MutationContext
from owlat.app.lib.templates import (
    FORCE,
    MAX_LANGUAGES,
    MAX_PREVIEW_TEXT,
    MAX_SUBJECT,
    TemplateKind,
    clean_fields,
    clean_language,
    clean_text,
    compact_json,
    default_language,
    editable_template,
    invalid_state,
    save,
    translations_of,
)
from owlat.runtime import MutationCtx, v

OVERLAY = v.record(
    v.string(),
    v.object(
        {
            "html": v.optional(v.string()),
            "buttonText": v.optional(v.string()),
            "alt": v.optional(v.string()),
        }
    ),
)
LANGUAGE_ARGS = {"language": v.string(), **FORCE}
UPDATE_ARGS = {
    **LANGUAGE_ARGS,
    "subject": v.optional(v.string()),
    "previewText": v.optional(v.string()),
    "blocks": v.optional(OVERLAY),
}


async def _save(
    ctx: MutationCtx,
    context: MutationContext,
    template: dict[str, Any],
    translations: dict[str, Any],
    kind: TemplateKind,
    **changes: Any,
) -> dict[str, Any]:
    changes["translations"] = compact_json(translations) if translations else None
    return await save(ctx, context.team_id, template, changes, context.user_id, kind=kind)


async def add_translation(
    ctx: MutationCtx, args: Mapping[str, Any], kind: TemplateKind
) -> dict[str, Any]:
    """Add a language, starting from the default language's text."""
    context, template = await editable_template(ctx, args, kind)
    language = clean_language(args["language"])
    translations = translations_of(template)
    if language == default_language(template) or language in translations:
        raise invalid_state(f"The {kind.label.lower()} already has the language {language}")
    if len(translations) + 1 >= MAX_LANGUAGES:
        raise invalid_state(f"A {kind.label.lower()} has at most {MAX_LANGUAGES} languages")
    translations[language] = {
        "subject": template["subject"],
        "previewText": template.get("previewText"),
        "blocks": translatable_text(json.loads(template["content"])),
    }
    return await _save(ctx, context, template, translations, kind)


async def update_translation(
    ctx: MutationCtx, args: Mapping[str, Any], kind: TemplateKind
) -> dict[str, Any]:
    """Set a language's subject, preview text and block text (the default language's
    subject and preview text are the template's own)."""
    context, template = await editable_template(ctx, args, kind)
    language = clean_language(args["language"])
    at = f"translations.{language}"
    if language == default_language(template):
        if args.get("blocks") is not None:
            raise invalid("INVALID_INPUT", f"{at}.blocks: the default language's is the content")
        changes = clean_fields({k: args.get(k) for k in ("subject", "previewText")})
        return await save(ctx, context.team_id, template, changes, context.user_id, kind=kind)
    translations = translations_of(template)
    if language not in translations:
        raise not_found("Translation")
    overlay = translations[language]
    if args.get("subject") is not None:
        overlay["subject"] = clean_text(args["subject"], f"{at}.subject", MAX_SUBJECT)
    if args.get("previewText") is not None:
        preview_text = clean_text(args["previewText"], f"{at}.previewText", MAX_PREVIEW_TEXT)
        overlay["previewText"] = preview_text or None
    if args.get("blocks") is not None:
        known = block_ids(json.loads(template["content"]))
        for block_id in args["blocks"]:
            if block_id not in known:
                raise invalid("INVALID_INPUT", f"{at}.blocks.{block_id[:60]}: no such block")
        overlay["blocks"] = {
            block_id: {k: val for k, val in text.items() if val is not None}
            for block_id, text in args["blocks"].items()
        }
    return await _save(ctx, context, template, translations, kind)


async def remove_translation(
    ctx: MutationCtx, args: Mapping[str, Any], kind: TemplateKind
) -> dict[str, Any]:
    """Drop a language (sends asking for it get the default language)."""
    context, template = await editable_template(ctx, args, kind)
    translations = translations_of(template)
    if translations.pop(args["language"].strip(), None) is None:
        raise not_found("Translation")
    return await _save(ctx, context, template, translations, kind)


async def set_default_language(
    ctx: MutationCtx, args: Mapping[str, Any], kind: TemplateKind
) -> dict[str, Any]:
    """Make a translation the default language: its text goes into the content, and the
    outgoing default language becomes a translation."""
    context, template = await editable_template(ctx, args, kind)
    language = clean_language(args["language"])
    current = default_language(template)
    if language == current:
        return template
    translations = translations_of(template)
    overlay = translations.pop(language, None)
    if overlay is None:
        raise not_found("Translation")
    blocks = json.loads(template["content"])
    translations[current] = {
        "subject": template["subject"],
        "previewText": template.get("previewText"),
        "blocks": translatable_text(blocks),
    }
    content = merge_translation(blocks, overlay.get("blocks") or {})
    return await _save(
        ctx,
        context,
        template,
        translations,
        kind,
        defaultLanguage=language,
        subject=overlay.get("subject") or template["subject"],
        previewText=overlay.get("previewText"),
        content=compact_json(content),
    )
