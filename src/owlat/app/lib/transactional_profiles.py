"""Transactional profiles: what the API's intake reads of a transactional email, small.

A transactional email's document holds its content, rendered HTML, text and translations
(the bench's: over 100 KB), and the intake of `POST /api/v1/transactional` used to read
and decode all of it on every request to check five fields. Each email now has one
`transactionalProfiles` row holding those fields (slug, status, whether it has content, its
variables' schema, attachments, unsubscribe footer and languages) and, per language sent
since its rendering last changed, the `sendContents` row its sends name and the subject to
personalize (`lib/sending/send_contents.py`).

The row is kept by a trigger on `transactionalEmails` (`on_email_change`), in the
transaction of every write of the email, whichever function makes it: it can never be
older than the email at any snapshot, and reading it puts it in the read set like the
email itself. A write that changes the rendering (subject, HTML, text, translations,
variables) forgets the contents; the next send of each language finds or stores its
`sendContents` row from the email (`content_of`), once. An email written before profiles
existed gets its row from the first request that names it (`profile_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from owlat.app.lib.sending.send_contents import content_for
from owlat.app.lib.templates import find_template, stored_rendering
from owlat.app.lib.transactional_emails import TRANSACTIONAL, find_by_slug
from owlat.runtime import UNDEFINED, Change, MutationCtx

TABLE = "transactionalProfiles"
# Fields copied from the email as they are (absent stays absent).
COPIED = (
    "organizationId",
    "slug",
    "status",
    "showUnsubscribe",
    "defaultLanguage",
    "supportedLanguages",
    "dataVariablesSchema",
    "attachments",
)
# The email's fields its rendering (`templates.stored_rendering`) is made of.
RENDERING = ("subject", "previewText", "htmlContent", "plainTextContent", "htmlTranslations")
RENDERING_VARIABLES = "variables"


def _no_blocks(content: str) -> bool:
    """Whether saved content (a JSON array of blocks: every save validates it) is `[]`,
    without parsing the whole template."""
    return not content.strip()[1:-1].strip()


def _fields(email: Mapping[str, Any]) -> dict[str, Any]:
    fields = {name: email[name] for name in COPIED if name in email}
    fields["transactionalEmailId"] = email["_id"]
    fields["hasContent"] = bool(email.get("htmlContent")) and not _no_blocks(email["content"])
    return fields


def _same_rendering(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(old.get(name) == new.get(name) for name in (*RENDERING, RENDERING_VARIABLES))


async def _profile_of(ctx: MutationCtx, email_id: str) -> dict[str, Any] | None:
    found = (
        await ctx.db.query(TABLE)
        .with_index("by_email", lambda q: q.eq("transactionalEmailId", email_id))
        .unique()
    )
    return None if found is None else dict(found)


async def on_email_change(ctx: MutationCtx, change: Change) -> None:
    """A trigger on `transactionalEmails`: the email's profile follows the write."""
    profile = await _profile_of(ctx, change.id)
    if change.new is None:
        if profile is not None:
            await ctx.db.delete(profile["_id"])
        return
    fields = _fields(change.new)
    if profile is None:
        await ctx.db.insert(TABLE, {**fields, "contents": {}})
        return
    kept = change.old is not None and _same_rendering(change.old, change.new)
    fields["contents"] = profile["contents"] if kept else {}
    stale = {name: UNDEFINED for name in COPIED if name in profile and name not in fields}
    if stale or any(profile.get(name) != value for name, value in fields.items()):
        await ctx.db.patch(profile["_id"], {**fields, **stale})


async def profile_for(
    ctx: MutationCtx, organization_id: str, email_id: str | None, slug: str | None
) -> dict[str, Any] | None:
    """The profile of the organization's email with this id (or else this slug), or None
    when it has no such email; an email without one yet gets it now."""
    if email_id is not None:
        found = await _profile_of(ctx, email_id)
    else:
        found = await (
            ctx.db.query(TABLE)
            .with_index(
                "by_org_slug", lambda q: q.eq("organizationId", organization_id).eq("slug", slug)
            )
            .first()
        )
    if found is not None:
        return dict(found) if found["organizationId"] == organization_id else None
    if email_id is not None:
        email = await find_template(ctx, organization_id, email_id, TRANSACTIONAL)
    else:
        email = await find_by_slug(ctx, organization_id, str(slug))
    if email is None:
        return None
    profile = {**_fields(email), "contents": {}}
    return {**profile, "_id": await ctx.db.insert(TABLE, profile)}


async def content_of(ctx: MutationCtx, profile: dict[str, Any], language: str) -> dict[str, str]:
    """`{contentId, subject}` of the email's rendering in `language`: the profile's, else
    found or stored from the email (`send_contents.content_for`) and kept in the profile."""
    contents = profile["contents"]
    if language in contents:
        return dict(contents[language])
    email = await find_template(
        ctx, profile["organizationId"], profile["transactionalEmailId"], TRANSACTIONAL
    )
    if email is None:
        raise LookupError(f"transactional email {profile['transactionalEmailId']} is gone")
    rendered = stored_rendering(email, language)
    content_id = await content_for(
        ctx, profile["organizationId"], email["_id"], language, rendered
    )
    entry = {"contentId": content_id, "subject": rendered.subject}
    profile["contents"] = {**contents, language: entry}
    await ctx.db.patch(profile["_id"], {"contents": profile["contents"]})
    return entry
