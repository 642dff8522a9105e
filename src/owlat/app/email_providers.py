"""`emailProviders:*`: an organization's SMTP, Amazon SES and Resend settings
(`lib/email_providers/configured.py`).

`saveSmtp`, `saveSes`, `saveResend` (`organization:manage`) create or replace the kind's
configuration: settings are checked, secrets sealed at rest (an omitted secret keeps the
stored one). `list` (any member) answers masked summaries: settings, the names of the
secrets that are set, and the provider's health; never a secret or a part of one. `remove`
refuses a provider a route still uses. `testConnection` (an action, `organization:manage`)
reaches a configured provider with its stored settings and secrets as a delivery would
(SMTP: connect to a checked address, greet, TLS, AUTH, QUIT; SES: a signed call; Resend: the
key on `GET /domains`; the outbox: its folder takes a file), sends nothing, and answers
`{ok, message}` (with `errorKind` when it failed). The local outbox needs no configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from owlat.app.lib.audience import organization_rows
from owlat.app.lib.email_providers import configured
from owlat.app.lib.email_providers.credentials import CredentialsError
from owlat.app.lib.email_providers.types import ProviderError
from owlat.app.lib.errors import invalid, not_found
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.sending.routes import health_rows, health_summary, provider_row
from owlat.app.lib.session_organization import (
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.runtime import (
    ActionCtx,
    MutationCtx,
    QueryCtx,
    action,
    internal,
    internal_query,
    mutation,
    query,
    v,
)

Cleaner = Callable[[Mapping[str, Any]], tuple[dict[str, Any], dict[str, str]]]
KIND = v.union(v.literal("smtp"), v.literal("ses"), v.literal("resend"))
TESTABLE = v.union(KIND, v.literal("outbox"))
SECRET = v.optional(v.string())


async def _save(
    ctx: MutationCtx, kind: str, args: Mapping[str, Any], clean: Cleaner
) -> dict[str, Any]:
    context = await get_mutation_context(ctx)
    require_permission(context.role, "organization:manage")
    return await save_provider(ctx, context.team_id, context.user_id, kind, args, clean)


async def save_provider(
    ctx: MutationCtx,
    organization_id: str,
    user_id: str,
    kind: str,
    args: Mapping[str, Any],
    clean: Cleaner,
) -> dict[str, Any]:
    """Create or replace the organization's `kind` configuration from `args` (checked by
    `clean`) in the name of `user_id`; its masked summary. Callers check the permission."""
    settings, secrets = clean(args)
    stored = await provider_row(ctx, organization_id, kind)
    if stored is not None:
        try:
            kept = configured.open_secrets(organization_id, kind, stored["credentials"])
        except CredentialsError:
            kept = {}  # sealed under another key: every secret must be entered again
        secrets = {**kept, **secrets}
    configured.required_secrets(kind, secrets)
    now = now_ms()
    fields = {
        "settings": settings,
        "credentials": configured.seal_secrets(organization_id, kind, secrets),
        "secretNames": sorted(secrets),
        "updatedBy": user_id,
        "updatedAt": now,
    }
    if stored is None:
        row_id = await ctx.db.insert(
            "emailProviders",
            {"organizationId": organization_id, "kind": kind, "createdAt": now, **fields},
        )
    else:
        row_id = stored["_id"]
        await ctx.db.patch(row_id, fields)
    saved = await ctx.db.get(row_id)
    assert saved is not None  # written in this transaction
    return configured.summary(saved)


SMTP_ARGS = {
    "host": v.string(),
    "port": v.optional(v.number()),
    "security": v.optional(v.union(v.literal("starttls"), v.literal("tls"), v.literal("none"))),
    "username": v.optional(v.string()),
    "password": SECRET,
    "spfInclude": v.optional(v.string()),
}


@mutation(args=SMTP_ARGS)
async def save_smtp(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Configure the SMTP relay (`spfInclude`: the relay's SPF include, if it has one)."""
    return await _save(ctx, "smtp", args, configured.clean_smtp)


@mutation(
    args={
        "region": v.string(),
        "accessKeyId": SECRET,
        "secretAccessKey": SECRET,
        "configurationSet": v.optional(v.string()),
        "snsTopicArn": v.optional(v.string()),
    }
)
async def save_ses(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    return await _save(ctx, "ses", args, configured.clean_ses)


@mutation(args={"apiKey": SECRET, "webhookSecret": SECRET})
async def save_resend(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    return await _save(ctx, "resend", args, configured.clean_resend)


@query(args={})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The configured providers (masked) with their health; oldest first."""
    organization_id = await get_team_id_from_session(ctx)
    rows = sorted(
        await organization_rows(ctx, "emailProviders", organization_id),
        key=lambda row: row["createdAt"],
    )
    health = await health_rows(ctx, organization_id)
    now = now_ms()
    answer = []
    for row in rows:
        stored = health.get(row["kind"])
        answer.append(
            {
                **configured.summary(row),
                "health": None if stored is None else health_summary(stored, now),
            }
        )
    return answer


@mutation(args={"kind": KIND})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    context = await get_mutation_context(ctx)
    require_permission(context.role, "organization:manage")
    kind = args["kind"]
    stored = await provider_row(ctx, context.team_id, kind)
    if stored is None:
        raise not_found("Email provider")
    for route in await organization_rows(ctx, "providerRoutes", context.team_id):
        if any(target["provider"] == kind for target in route["providers"]):
            raise invalid(
                "PROVIDER_IN_USE",
                f"The {route['messageType']} route uses {kind}; change the route first",
            )
    await ctx.db.delete(stored["_id"])


@internal_query(args={"organizationId": v.id("organizations"), "kind": KIND})
async def sealed(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The settings and sealed credentials of a kind (for actions that open them)."""
    row = await provider_row(ctx, args["organizationId"], args["kind"])
    return None if row is None else {"settings": row["settings"], "credentials": row["credentials"]}


@action(args={"kind": TESTABLE})
async def test_connection(ctx: ActionCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Reach the `kind` provider as configured, sending nothing (module docstring)."""
    kind = args["kind"]
    stored = await ctx.run_query(internal.email_providers.to_test, {"kind": kind})
    try:
        secrets = (
            {}
            if stored["credentials"] is None
            else configured.open_secrets(stored["organizationId"], kind, stored["credentials"])
        )
    except CredentialsError as error:
        return {"ok": False, "errorKind": "AUTH_FAILED", "message": f"{error}; save it again"}
    provider = configured.build_provider(kind, stored["settings"], secrets)
    try:
        message = await provider.check()
    except ProviderError as error:
        return {"ok": False, "errorKind": error.kind.value, "message": error.message}
    finally:
        await configured.close_provider(provider)
    return {"ok": True, "message": message}


@internal_query(args={"kind": TESTABLE})
async def to_test(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The caller's organization (`organization:manage`) and its `kind` configuration."""
    context = await get_mutation_context(ctx, require="organization:manage")
    if args["kind"] == "outbox":
        return {"organizationId": context.team_id, "settings": {}, "credentials": None}
    row = await provider_row(ctx, context.team_id, args["kind"])
    if row is None:
        raise not_found("Email provider")
    return {
        "organizationId": context.team_id,
        "settings": row["settings"],
        "credentials": row["credentials"],
    }
