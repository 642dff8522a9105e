"""Send contents: a transactional email's rendering, stored once for the many sends of it.

A send made from a transactional email (the REST API's) does not carry its own HTML and
text: it names a `sendContents` row, the email's rendering in the send's language exactly
as it was when the send was accepted (placeholders and condition markers still in), and
carries what is its own: `dataVariables` and, when the email shows one and the recipient
is a contact, the unsubscribe footer's two links (`footerLinks`). Delivery personalizes
the content with them (`body_of`): the same `personalize` and footer the API applied when
each send carried its bodies, so what is sent is what the send recorded. A send's row is
then a few hundred bytes instead of the rendering's tens of KB (the bench's template: 55 KB
of HTML and text written per request).

Rows are never changed. `content_for` takes the newest row of the email and language and
uses it when it holds the rendering the send is made of (compared field by field, so any
edit of the email, its translations or its theme is seen); otherwise it writes a new row.
A send queued before an edit keeps the row it names. Rows are deleted with their
organization only: deleting the email leaves them to the sends still queued.
"""

from __future__ import annotations

import dataclasses
import functools
import html
from collections.abc import Mapping
from typing import Any

from owlat.app.lib.rendering import (
    Message,
    RenderedTemplate,
    compile_template,
    personalize,
)
from owlat.app.lib.rendering.text import html_to_text
from owlat.app.lib.subscription_tokens import preferences_link, unsubscribe_link
from owlat.runtime import MutationCtx, QueryCtx

TABLE = "sendContents"
_STATE = "send_contents.rows"  # ctx.state: content id -> its row
_FOOTER_STYLE = "color:#6b7280;font-family:Arial,sans-serif;font-size:12px"
# Compiling a 40 KB rendering takes about a millisecond; a template is sent many times.
compiled = functools.lru_cache(maxsize=64)(compile_template)


@functools.lru_cache(maxsize=256)
def _compiled_subject(subject: str) -> Any:
    return compile_template(RenderedTemplate("", "", subject, "", ()))


def personalized_subject(subject: str, variables: Mapping[str, Any]) -> str:
    """The subject of `personalize` for `variables`, without filling the bodies in."""
    return personalize(_compiled_subject(subject), variables).subject


def footer_links(contact_id: str | None) -> dict[str, str] | None:
    """The unsubscribe footer's links for a contact (None: no contact, no footer)."""
    if contact_id is None:
        return None
    return {
        "preferences": preferences_link(contact_id),
        "unsubscribe": unsubscribe_link(contact_id),
    }


def with_footer(message: Message, links: Mapping[str, str] | None) -> Message:
    """`message` with the preferences and unsubscribe links at the end of its HTML body
    (before `</body>`) and of its text."""
    if links is None:
        return message
    preferences, unsubscribe = links["preferences"], links["unsubscribe"]
    footer = (
        f'<p style="{_FOOTER_STYLE};text-align:center;padding:16px">'
        f'<a href="{html.escape(preferences)}" style="{_FOOTER_STYLE}">Manage preferences</a>'
        f' · <a href="{html.escape(unsubscribe)}" style="{_FOOTER_STYLE}">Unsubscribe</a></p>'
    )
    body = message.html
    at = body.rfind("</body>")
    body = body + footer if at < 0 else body[:at] + footer + body[at:]
    text = f"{message.text}\n\nManage preferences: {preferences}\nUnsubscribe: {unsubscribe}\n"
    return dataclasses.replace(message, html=body, text=text)


_RENDERING = ("html", "text", "subject", "variables")


def _rendering(row: Mapping[str, Any]) -> RenderedTemplate:
    return RenderedTemplate(row["html"], row["text"], row["subject"], "", tuple(row["variables"]))


async def content_for(
    ctx: MutationCtx,
    organization_id: str,
    email_id: str,
    language: str,
    rendered: RenderedTemplate,
) -> str:
    """The id of the row holding `rendered` (the email's in `language`), written if the
    newest row of the email and language holds another rendering (module docstring)."""
    newest = (
        await ctx.db.query(TABLE)
        .with_index(
            "by_email_language",
            lambda q: q.eq("transactionalEmailId", email_id).eq("language", language),
        )
        .order("desc")
        .first()
    )
    if newest is not None and _rendering(newest) == dataclasses.replace(rendered, preheader=""):
        return str(newest["_id"])
    row = {
        "organizationId": organization_id,
        "transactionalEmailId": email_id,
        "language": language,
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "variables": list(rendered.variables),
    }
    return str(await ctx.db.insert(TABLE, row))


async def body_of(
    ctx: QueryCtx,
    content_id: str,
    variables: Mapping[str, Any],
    links: Mapping[str, str] | None,
) -> dict[str, str]:
    """The `html` and `text` a send of content `content_id` delivers (module docstring).
    The content is read once per transaction and compiled once per process (rows never
    change: a claim of many sends of one email reads its 55 KB once, not once per send)."""
    return personalized(await content_of(ctx, content_id), variables, links)


async def content_of(ctx: QueryCtx, content_id: str) -> dict[str, Any]:
    """The content row `content_id` (what `personalized` reads of it), read once per
    transaction (`LookupError`: gone)."""
    kept: dict[str, dict[str, Any]] = ctx.state.setdefault(_STATE, {})
    content = kept.get(content_id)
    if content is None:
        found = await ctx.db.get(content_id)
        if found is None:
            raise LookupError(f"send content {content_id} is gone")
        content = kept[content_id] = {name: found[name] for name in _RENDERING}
    return content


def personalized(
    content: Mapping[str, Any], variables: Mapping[str, Any], links: Mapping[str, str] | None
) -> dict[str, str]:
    """The `html` and `text` of `content` (a row) for `variables` and footer `links`
    (compiled once per process: `compiled` keeps the last 64 renderings)."""
    message = with_footer(personalize(compiled(_rendering(content)), variables), links)
    return {"html": message.html, "text": message.text or html_to_text(message.html)}
