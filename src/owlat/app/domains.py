"""`domains:*`: an organization's sending domains (reference §2.6, §7.8, §12).

`create` (`organization:manage`) adds a domain for a provider kind (`outbox`, `smtp`,
`ses`, `resend`; what each publishes: `lib/domains/issuing.py`): an SES domain starts
`registering` (`sesActions:register` registers its identity, then its records are issued);
the others get their records at once and start `pending`. `setDmarcPolicy` re-issues the
DMARC record (a verified domain goes back to pending: the published record must change).
`remove` deletes the domain (and its SES identity). `list`, `get` (any member) answer the
rows without the sealed DKIM key, with the records as zone-file lines. `checkSender` tells
whether a From address may be used now, and why not. Verification: `dnsVerification:*`.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.audience import live_document, organization_rows
from owlat.app.lib.domains.issuing import (
    dmarc_fields,
    dmarc_policy,
    domain_view,
    key_material,
    records_for,
)
from owlat.app.lib.domains.names import normalize_domain
from owlat.app.lib.domains.records import DmarcPolicy, mail_from_domain, records_document
from owlat.app.lib.domains.sender_check import stale_warning
from owlat.app.lib.domains.ses_deletion import schedule_identity_deletion
from owlat.app.lib.domains.states import DomainState, DomainStatus, move
from owlat.app.lib.email_providers.routing import MessageType
from owlat.app.lib.errors import AppError, AuthFailure, invalid, not_found
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.sending.routes import enabled_providers, route_for
from owlat.app.lib.sending.sends import check_sender
from owlat.app.lib.session_organization import (
    MutationContext,
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.schema import DMARC_MODE, MESSAGE_TYPE, PROVIDER_KIND
from owlat.runtime import UNDEFINED, MutationCtx, QueryCtx, internal, mutation, query, v

DMARC_ARGS = {
    "dmarcPolicy": v.optional(DMARC_MODE),
    "dmarcSubdomainPolicy": v.optional(DMARC_MODE),
    "dmarcPct": v.optional(v.number()),
    "dmarcRua": v.optional(v.string()),
}


async def _manager(ctx: MutationCtx) -> MutationContext:
    context = await get_mutation_context(ctx)
    require_permission(context.role, "organization:manage")
    return context


async def domain_row(ctx: QueryCtx, organization_id: str, domain_id: str) -> dict[str, Any]:
    row = await live_document(ctx, "domains", organization_id, domain_id)
    if row is None:
        raise not_found("Domain")
    return row


def _dmarc(args: dict[str, Any]) -> DmarcPolicy:
    pct = args.get("dmarcPct")
    if pct is not None and pct != int(pct):
        raise invalid("INVALID_DMARC_POLICY", "DMARC pct must be a whole number from 0 to 100")
    return DmarcPolicy(
        args.get("dmarcPolicy") or "none",
        args.get("dmarcSubdomainPolicy"),
        None if pct is None else int(pct),
        args.get("dmarcRua"),
    )


def _defined(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: UNDEFINED if value is None else value for name, value in fields.items()}


async def _spf_include(ctx: QueryCtx, organization_id: str) -> str | None:
    rows = await organization_rows(ctx, "emailProviders", organization_id)
    smtp = next((row for row in rows if row["kind"] == "smtp"), None)
    return None if smtp is None else smtp["settings"].get("spfInclude")


@mutation(
    args={
        "domain": v.string(),
        "providerKind": PROVIDER_KIND,
        "returnPathHost": v.optional(v.string()),
        **DMARC_ARGS,
    }
)
async def create(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Add a sending domain; its id."""
    context = await _manager(ctx)
    organization_id = context.team_id
    domain = normalize_domain(args["domain"])
    kind = args["providerKind"]
    dmarc = _dmarc(args)
    existing = await (
        ctx.db.query("domains")
        .with_index(
            "by_org_domain", lambda q: q.eq("organizationId", organization_id).eq("domain", domain)
        )
        .first()
    )
    if existing is not None:
        raise AuthFailure(
            "ALREADY_EXISTS", f"{domain} is already a sending domain of this organization"
        )
    if args.get("returnPathHost") and kind != "ses":
        raise invalid("INVALID_RETURN_PATH", "A return-path host is chosen only for SES domains")
    now = int(now_ms())
    row: dict[str, Any] = {
        "organizationId": organization_id,
        "domain": domain,
        "providerKind": kind,
        "dnsRecords": {},
        "recordsVersion": 1,
        "unverifiedChecks": 0,
        "createdBy": context.user_id,
        "createdAt": now,
        "updatedAt": now,
        **{k: value for k, value in dmarc_fields(dmarc).items() if value is not None},
    }
    state = DomainState(DomainStatus.REGISTERING)
    if kind == "ses":
        ses = await organization_rows(ctx, "emailProviders", organization_id)
        config = next((r for r in ses if r["kind"] == "ses"), None)
        if config is None:
            raise invalid("SES_NOT_CONFIGURED", "Configure Amazon SES under email providers first")
        row["returnPathHost"] = mail_from_domain(domain, args.get("returnPathHost"))
        row["sesRegion"] = config["settings"]["region"]
    else:
        row.update(await key_material(organization_id, domain, kind, now))
        records = records_for(row, spf_include=await _spf_include(ctx, organization_id))
        row["dnsRecords"] = records_document(records)
        state = move(state, DomainStatus.PENDING, now)
    row.update({k: value for k, value in state.to_fields().items() if value is not None})
    domain_id = await ctx.db.insert("domains", row)
    if kind == "ses":
        await ctx.scheduler.run_after(
            0, internal.ses_actions.register_identity, {"domainId": domain_id}
        )
    return str(domain_id)


@query(args={})
async def list_(ctx: QueryCtx, args: dict[str, Any]) -> list[dict[str, Any]]:
    organization_id = await get_team_id_from_session(ctx)
    rows = await organization_rows(ctx, "domains", organization_id)
    now = now_ms()
    return [domain_view(row, now) for row in sorted(rows, key=lambda row: row["domain"])]


@query(args={"domainId": v.id("domains")})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    organization_id = await get_team_id_from_session(ctx)
    return domain_view(await domain_row(ctx, organization_id, args["domainId"]), now_ms())


@mutation(args={"domainId": v.id("domains")})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete the domain (mail From it is refused from now on); an SES identity is deleted
    at SES too."""
    context = await _manager(ctx)
    row = await domain_row(ctx, context.team_id, args["domainId"])
    await ctx.db.delete(row["_id"])
    if row["providerKind"] == "ses":
        await schedule_identity_deletion(ctx, context.team_id, row["domain"])


@mutation(args={"domainId": v.id("domains"), **DMARC_ARGS})
async def set_dmarc_policy(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Change the DMARC policy: the DMARC record is issued again (to be published)."""
    context = await _manager(ctx)
    row = await domain_row(ctx, context.team_id, args["domainId"])
    dmarc = _dmarc(args)
    if dmarc == dmarc_policy(row):
        return domain_view(row, now_ms())
    now = int(now_ms())
    changes = _defined(dmarc_fields(dmarc))
    state = DomainState.from_fields(row)
    if state.status is not DomainStatus.REGISTERING:
        records = records_for(
            {**row, **dmarc_fields(dmarc)}, spf_include=await _spf_include(ctx, context.team_id)
        )
        changes["dnsRecords"] = records_document(records)
        changes["recordsVersion"] = row["recordsVersion"] + 1
        changes.update(_defined(move(state, DomainStatus.PENDING, now).to_fields()))
    changes["updatedAt"] = now
    await ctx.db.patch(row["_id"], changes)
    return domain_view(await domain_row(ctx, context.team_id, args["domainId"]), now)


@query(args={"fromEmail": v.string(), "messageType": v.optional(MESSAGE_TYPE)})
async def check_sender_address(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Whether mail of `messageType` (default transactional) may be sent From `fromEmail`
    now: `{allowed, reason, warning}` (the reason is the error a send would get; the
    warning says the domain's verification is stale, which does not stop sending)."""
    organization_id = await get_team_id_from_session(ctx)
    message_type = MessageType(args.get("messageType") or "transactional")
    route = await route_for(ctx, organization_id, message_type)
    domains = await organization_rows(ctx, "domains", organization_id)
    providers = enabled_providers(route)
    try:
        await check_sender(ctx, organization_id, args["fromEmail"], providers, domains)
    except AppError as error:
        return {"allowed": False, "reason": str(error.data), "warning": None}
    warning = stale_warning(args["fromEmail"], domains, now_ms())
    return {"allowed": True, "reason": None, "warning": warning}
