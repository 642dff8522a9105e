"""Transactional emails: templates sent to one recipient at a time (reference §2.3, §3.9).

A transactional email is a rendered template (`templates.py`, kind `TRANSACTIONAL`: saved,
checked and rendered like an email template, without versions) with a `slug` unique in its
organization (`SLUG`), a schema of the data variables a request may pass
(`dataVariablesSchema`: name → string | number | boolean | date, names `VARIABLE_NAME`) and
attachments that go with every send (stored files of the organization).

Sending one (`message_for`): the language is the request's, else the contact's, else the
template's default, and is kept only when the template has it (`resolve_language`); the
stored rendering of that language is personalized with the request's data variables (not
the contact's fields: upstream's rule); when `showUnsubscribe` is on and the recipient is a
contact, a footer with the preferences and unsubscribe links follows.

Variables are checked against the schema (`variable_problem`): a variable the schema names
and the request gives (not null) must have that type as JavaScript's `typeof` says it (a
list or an object is "object"); a date is a string or a number that reads as one (ISO 8601,
or milliseconds since 1970). Variables the schema does not name pass unchecked.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from owlat.app.lib.errors import invalid
from owlat.app.lib.rendering import Message, personalize
from owlat.app.lib.sending.send_contents import compiled, footer_links, with_footer
from owlat.app.lib.templates import TemplateKind, default_language, stored_rendering
from owlat.runtime import QueryCtx

TRANSACTIONAL = TemplateKind(
    "transactionalEmails",
    "transactionalEmailId",
    "Transactional email",
    versioned=False,
    dependents=(
        ("shareLinks", "by_transactional_email", "transactionalEmailId"),
        ("transactionalCounts", "by_email", "transactionalEmailId"),
    ),
)
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_SLUG = 100
VARIABLE_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")
MAX_VARIABLE_NAME = 100
MAX_VARIABLES = 100
VARIABLE_TYPES = ("string", "number", "boolean", "date")


def clean_slug(slug: str) -> str:
    slug = slug.strip()
    if not SLUG.match(slug) or len(slug) > MAX_SLUG:
        raise invalid(
            "INVALID_SLUG",
            f"slug: {slug[:40]!r} must be lower-case letters and digits in words joined by "
            f"single hyphens (order-receipt), at most {MAX_SLUG} characters",
        )
    return slug


def clean_schema(schema: Mapping[str, str]) -> dict[str, str]:
    """A data variables schema, checked (names, types, how many)."""
    if len(schema) > MAX_VARIABLES:
        raise invalid("INVALID_SCHEMA", f"dataVariablesSchema: at most {MAX_VARIABLES} variables")
    for name, kind in schema.items():
        if not VARIABLE_NAME.match(name) or len(name) > MAX_VARIABLE_NAME:
            raise invalid(
                "INVALID_SCHEMA",
                f"dataVariablesSchema: {name[:40]!r} must start with a letter and hold only "
                f"letters, digits and underscores (at most {MAX_VARIABLE_NAME} characters)",
            )
        if kind not in VARIABLE_TYPES:
            raise invalid(
                "INVALID_SCHEMA",
                f"dataVariablesSchema.{name}: type must be one of {', '.join(VARIABLE_TYPES)}",
            )
    return dict(schema)


async def find_by_slug(ctx: QueryCtx, organization_id: str, slug: str) -> dict[str, Any] | None:
    found = (
        await ctx.db.query(TRANSACTIONAL.table)
        .with_index(
            "by_org_slug", lambda q: q.eq("organizationId", organization_id).eq("slug", slug)
        )
        .first()
    )
    return None if found is None else dict(found)


async def ensure_slug_free(
    ctx: QueryCtx, organization_id: str, slug: str, template_id: str | None = None
) -> None:
    """Refuse a slug another transactional email of the organization has."""
    other = await find_by_slug(ctx, organization_id, slug)
    if other is not None and other["_id"] != template_id:
        raise invalid("SLUG_TAKEN", f'A transactional email with slug "{slug}" already exists')


# -- variables -------------------------------------------------------------------------------


def js_type(value: Any) -> str:
    """JavaScript's `typeof` of a JSON value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def _reads_as_date(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return math.isfinite(value)
    if not isinstance(value, str):
        return False
    try:
        dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def variable_problem(schema: Mapping[str, str], variables: Mapping[str, Any]) -> str | None:
    """The first variable whose type is not the schema's, as a sentence, or None."""
    for name, expected in schema.items():
        value = variables.get(name)
        if value is None:
            continue
        ok = _reads_as_date(value) if expected == "date" else js_type(value) == expected
        if not ok:
            return f'Variable "{name}" should be of type "{expected}", got "{js_type(value)}"'
    return None


# -- sending ---------------------------------------------------------------------------------


def resolve_language(
    template: Mapping[str, Any], requested: str | None, contact_language: str | None
) -> str:
    """The language to send in (module docstring)."""
    default = default_language(template)
    supported = template.get("supportedLanguages") or [default]
    for candidate in (requested, contact_language):
        if candidate:
            for language in supported:
                if language.lower() == candidate.lower():
                    return str(language)
            return default
    return default


def message_for(
    template: Mapping[str, Any],
    language: str,
    variables: Mapping[str, Any],
    contact_id: str | None,
) -> Message:
    """The template in `language` personalized with `variables`, with the unsubscribe
    footer when the template shows one and the recipient is a contact."""
    message = personalize(compiled(stored_rendering(template, language)), variables)
    return with_footer(message, footer_links_for(template, contact_id))


def footer_links_for(template: Mapping[str, Any], contact_id: str | None) -> dict[str, str] | None:
    """The unsubscribe footer's links of a send of `template` to `contact_id`, or None."""
    return footer_links(contact_id) if template.get("showUnsubscribe") else None
