"""Running the checks of §12.3 for a stored domain: its records in DNS (the instance's
nameservers, `OWLAT_DNS_NAMESERVERS`, else the system's), plus SES's verdict on an SES
domain; and the tracking-domain rule. The results cross from the action that looks them up
to the mutation that applies them as JSON (`result_json` / `result_from_json`).

Tracking domains: the CNAME found → verified (checked again daily); a definite "no" → a
verified domain fails at once (its links would break), another one stays pending and is
checked again hourly; no answer → unchanged, checked again in 15 minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from owlat.app.lib.domains.records import records_from_document, tracking_record
from owlat.app.lib.domains.ses_identity import SesIdentities, SesSettings
from owlat.app.lib.domains.states import DAY_MS, HOUR_MS, MINUTE_MS
from owlat.app.lib.domains.verification import CheckResult, CheckStatus, DnsChecker
from owlat.app.lib.email_providers.configured import open_secrets
from owlat.app.lib.email_providers.credentials import CredentialsError
from owlat.app.lib.instance import current
from owlat.runtime import UNDEFINED, ActionCtx, internal

TRACKING_VERIFIED_RECHECK_MS = DAY_MS
TRACKING_PENDING_RECHECK_MS = HOUR_MS
TRACKING_RETRY_MS = 15 * MINUTE_MS


def dns_checker() -> DnsChecker:
    servers = current().dns_nameservers
    if not servers:
        return DnsChecker()
    return DnsChecker([host for host, _ in servers], port=servers[0][1])


def result_json(result: CheckResult) -> dict[str, Any]:
    return {
        "key": result.key,
        "name": result.name,
        "status": str(result.status),
        "reason": result.reason,
        "found": list(result.found),
    }


def result_from_json(document: Mapping[str, Any]) -> CheckResult:
    return CheckResult(
        document["key"],
        document["name"],
        CheckStatus(document["status"]),
        document["reason"],
        tuple(document["found"]),
    )


async def check_domain(ctx: ActionCtx, row: Mapping[str, Any]) -> list[CheckResult]:
    """Every issued record of a sending domain looked up, plus SES's check of an SES one."""
    records = records_from_document(row["dnsRecords"])
    results = await dns_checker().check_all(records, row["domain"])
    if row["providerKind"] == "ses":
        results.append(await _ses_check(ctx, row))
    return results


async def _ses_check(ctx: ActionCtx, row: Mapping[str, Any]) -> CheckResult:
    identities = await ses_identities(ctx, row["organizationId"])
    if identities is None:
        reason = "Amazon SES is not configured for this organization; configure it again"
        return CheckResult("provider", "SES", CheckStatus.FAILED, reason)
    try:
        return await identities.check(row["domain"])
    finally:
        identities.close()


async def ses_identities(ctx: ActionCtx, organization_id: str) -> SesIdentities | None:
    """SES identity calls with the organization's SES credentials (None: not configured,
    or its credentials do not open)."""
    config = await ctx.run_query(
        internal.email_providers.sealed, {"organizationId": organization_id, "kind": "ses"}
    )
    if config is None:
        return None
    return ses_identities_of(organization_id, config["settings"]["region"], config["credentials"])


def ses_identities_of(organization_id: str, region: str, sealed: str) -> SesIdentities | None:
    """SES identity calls in `region` with sealed SES credentials (None: they do not open)."""
    try:
        secrets = open_secrets(organization_id, "ses", sealed)
    except CredentialsError:
        return None
    settings = SesSettings(
        region,
        secrets["accessKeyId"],
        secrets["secretAccessKey"],
        current().ses_endpoint_url or None,
    )
    return SesIdentities(settings)


def tracking_target() -> str:
    """Where tracking domains point: the host of the site's public URL."""
    return (urlsplit(current().base_url).hostname or "").lower()


async def check_tracking(domain: str, target: str) -> CheckResult:
    return await dns_checker().check(tracking_record(target), domain)


def tracking_verdict(row: Mapping[str, Any], result: CheckResult, now: float) -> dict[str, Any]:
    """The tracking domain's fields after a check (module docstring)."""
    status = row["status"]
    fields: dict[str, Any] = {"lastCheckedAt": now, "updatedAt": now}
    if result.status is CheckStatus.OK:
        fields.update(
            status="verified",
            verifiedAt=row.get("verifiedAt") or now,
            lastError=UNDEFINED,
            nextCheckAt=now + TRACKING_VERIFIED_RECHECK_MS,
        )
    elif result.status is CheckStatus.RETRY:
        fields.update(lastError=result.reason, nextCheckAt=now + TRACKING_RETRY_MS)
    else:
        fields.update(
            status="failed" if status in ("verified", "failed") else "pending",
            lastError=result.reason,
            nextCheckAt=now + TRACKING_PENDING_RECHECK_MS,
        )
    return fields


async def check_and_apply(ctx: ActionCtx, domain: Mapping[str, Any]) -> dict[str, Any]:
    """Check a sending domain (as `domain_view` shows it) and apply the verdict; the domain
    afterwards (`DOMAIN_REGISTERING` while it registers)."""
    results = [] if domain["status"] == "registering" else await check_domain(ctx, domain)
    answer: dict[str, Any] = await ctx.run_mutation(
        internal.dns_verification.apply,
        {
            "domainId": domain["_id"],
            "recordsVersion": domain["recordsVersion"],
            "results": [result_json(result) for result in results],
        },
    )
    return answer


async def check_and_apply_tracking(ctx: ActionCtx, row: Mapping[str, Any]) -> dict[str, Any]:
    """Check a tracking domain's CNAME and apply the verdict; the row afterwards."""
    result = await check_tracking(row["domain"], row["cnameTarget"])
    answer: dict[str, Any] = await ctx.run_mutation(
        internal.dns_verification.apply_tracking,
        {"trackingDomainId": row["_id"], "result": result_json(result)},
    )
    return answer
