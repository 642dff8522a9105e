"""`adminTools:*`: what `owlat admin organization|api-key create` ask a running server for
(internal functions: the CLI calls them with the deployment's admin key), so a newcomer
can send a first email without the dashboard.

- `createOrganization`: an organization whose owner is an existing user (e.g. made by
  `owlat admin create`), with a published transactional email `welcome` to try the API
  with ("Welcome, {{name|'friend'}}").
- `createApiKey`: an API key of an organization (by slug or id), made in the name of its
  oldest owner; answered once, like `apiKeys:create`.
- `saveSmtp`: the organization's SMTP relay, as `emailProviders:saveSmtp` saves it, in the
  name of its oldest owner (`owlat admin smtp set`: e.g. a local sink under `owlat dev`).
- `setAbuseStatus`: the organization's abuse status (`owlat admin abuse set`); suspended or
  banned, it sends nothing (`lib/sending/intake.py`). No organization member can set it.
"""

from __future__ import annotations

import json
from typing import Any

from owlat.app.api_keys import SCOPES, insert_key
from owlat.app.email_providers import SMTP_ARGS, save_provider
from owlat.app.lib.audience import clean_email, organization_settings
from owlat.app.lib.email_providers.configured import clean_smtp
from owlat.app.lib.errors import AuthFailure, invalid, not_found
from owlat.app.lib.organizations import by_slug, clean_name, clean_slug
from owlat.app.lib.session_organization import now_ms
from owlat.app.lib.templates import save
from owlat.app.lib.transactional_emails import TRANSACTIONAL
from owlat.app.organization_settings import store
from owlat.app.schema import ABUSE_STATUS
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, internal_mutation, v

WELCOME_SLUG = "welcome"
WELCOME = [
    {
        "id": "welcome-text",
        "type": "text",
        "content": {
            "html": "<p>Hello {{name|'friend'}},</p><p>this email came through Owlat's "
            "transactional API.</p>"
        },
    }
]


async def _organization(ctx: QueryCtx, organization: str) -> dict[str, Any]:
    """The organization given by id or slug."""
    text = organization.strip()
    normalized = ctx.db.normalize_id("organizations", text)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None:
        found = await by_slug(ctx, text.lower())
    if found is None:
        raise not_found(f"Organization {organization!r}")
    return dict(found)


@internal_mutation(args={"name": v.string(), "slug": v.string(), "ownerEmail": v.string()})
async def create_organization(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """`{organizationId, slug, transactionalEmailId}`: the organization, owned by the user
    `ownerEmail`, with its published `welcome` transactional email."""
    name, slug = clean_name(args["name"]), clean_slug(args["slug"])
    email = clean_email(args["ownerEmail"])
    user = (
        await ctx.db.query("users").with_index("by_email", lambda q: q.eq("email", email)).first()
    )
    if user is None:
        raise not_found(f"User {email} (create it first: owlat admin create --email {email})")
    if await by_slug(ctx, slug) is not None:
        raise AuthFailure("ORGANIZATION_ALREADY_EXISTS", f"Organization {slug!r} already exists")
    now = now_ms()
    organization_id = await ctx.db.insert(
        "organizations", {"name": name, "slug": slug, "createdAt": now, "updatedAt": now}
    )
    await ctx.db.insert(
        "members",
        {
            "organizationId": organization_id,
            "userId": user["_id"],
            "role": "owner",
            "createdAt": now,
        },
    )
    fields = {
        "name": "Welcome",
        "slug": WELCOME_SLUG,
        "subject": "Welcome, {{name|'friend'}}",
        "content": json.dumps(WELCOME),
        "dataVariablesSchema": {"name": "string"},
        "status": "published",
        "publishedAt": now,
    }
    welcome = await save(ctx, organization_id, None, fields, user["_id"], kind=TRANSACTIONAL)
    return {"organizationId": organization_id, "slug": slug, "transactionalEmailId": welcome["_id"]}


@internal_mutation(
    args={
        "organization": v.string(),
        "name": v.string(),
        "scopes": v.optional(v.array(v.string())),
    }
)
async def create_api_key(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """`{keyId, apiKey, keyPrefix, name, organizationId}` (the key is shown only here);
    every scope unless `scopes` names some."""
    organization = await _organization(ctx, args["organization"])
    owner_id = await _oldest_owner(ctx, organization)
    scopes = args.get("scopes") or list(SCOPES)
    created = await insert_key(ctx, organization["_id"], owner_id, args["name"], scopes)
    return {**created, "organizationId": organization["_id"]}


@internal_mutation(args={"organization": v.string(), **SMTP_ARGS})
async def save_smtp(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The organization's SMTP relay saved (`emailProviders:saveSmtp`'s checks): its masked
    summary and `organizationId`."""
    organization = await _organization(ctx, args["organization"])
    owner_id = await _oldest_owner(ctx, organization)
    settings = {key: value for key, value in args.items() if key != "organization"}
    saved = await save_provider(ctx, organization["_id"], owner_id, "smtp", settings, clean_smtp)
    return {**saved, "organizationId": organization["_id"]}


@internal_mutation(
    args={"organization": v.string(), "status": ABUSE_STATUS, "reason": v.optional(v.string())}
)
async def set_abuse_status(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """`{organizationId, abuseStatus, abuseStatusReason}` once set (by the deployment's
    admin: `abuseStatusChangedBy` is "admin")."""
    organization = await _organization(ctx, args["organization"])
    reason = (args.get("reason") or "").strip()[:500]
    now = now_ms()
    fields = {
        "abuseStatus": args["status"],
        "abuseStatusReason": reason or UNDEFINED,
        "abuseStatusChangedAt": now,
        "abuseStatusChangedBy": "admin",
        "updatedAt": now,
    }
    stored = await organization_settings(ctx, organization["_id"])
    await store(ctx, organization["_id"], stored, fields)
    return {
        "organizationId": organization["_id"],
        "abuseStatus": args["status"],
        "abuseStatusReason": reason or None,
    }


async def _oldest_owner(ctx: QueryCtx, organization: dict[str, Any]) -> str:
    """The user id of the organization's oldest owner (what admin tools act as)."""
    owners = [
        member
        for member in await ctx.db.query("members")
        .with_index("by_org", lambda q: q.eq("organizationId", organization["_id"]))
        .collect()
        if member["role"] == "owner"
    ]
    if not owners:
        raise invalid("NO_OWNER", f"Organization {organization['slug']!r} has no owner")
    return str(min(owners, key=lambda member: member["createdAt"])["userId"])
