"""What a `domains` row publishes, per provider kind, and the key material Owlat keeps.

    kind     records (lib/domains/records.py)                   key material on the row
    smtp     [SPF include of the relay], DKIM TXT, DMARC        Owlat's DKIM key (sealed)
    outbox   DKIM TXT, DMARC (as smtp: the flow can be tried locally)   the same
    ses      SES verification, SPF, 3 DKIM CNAMEs, DMARC,       SES's tokens, after the
             MAIL FROM MX + SPF                                 identity is registered
    resend   `_owlat` TXT ownership token, DMARC                a random token

Resend signs with its own key, which Owlat does not see: the domain is also added and
verified in Resend, which refuses mail From a domain it has not verified. Owlat's
`_owlat` token proves that whoever added the domain here controls its DNS (so another
organization cannot claim it by a DMARC record that happens to match).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from typing import Any

from owlat.app.lib.domains.dkim_keys import generate_dkim_key, new_selector
from owlat.app.lib.domains.records import (
    DmarcPolicy,
    DnsRecord,
    dmarc_record,
    records_from_document,
    ses_records,
    smtp_records,
)
from owlat.app.lib.domains.states import is_stale
from owlat.app.lib.email_providers.configured import dkim_purpose, seal_secrets

OWNERSHIP_HOST = "_owlat"
OWNERSHIP_PREFIX = "owlat-verification="
SIGNED_KINDS = frozenset({"smtp", "outbox"})  # kinds Owlat DKIM-signs itself


def dmarc_policy(row: Mapping[str, Any]) -> DmarcPolicy:
    return DmarcPolicy(
        row.get("dmarcPolicy") or "none",
        row.get("dmarcSubdomainPolicy"),
        row.get("dmarcPct"),
        row.get("dmarcRua"),
    )


def dmarc_fields(dmarc: DmarcPolicy) -> dict[str, Any]:
    """A DMARC policy as the row's fields (None: unset)."""
    return {
        "dmarcPolicy": dmarc.policy,
        "dmarcSubdomainPolicy": dmarc.subdomain_policy,
        "dmarcPct": dmarc.pct,
        "dmarcRua": dmarc.rua,
    }


async def key_material(
    organization_id: str, domain: str, kind: str, now_ms: float
) -> dict[str, Any]:
    """The fields a new row of `kind` needs before its records can be issued."""
    if kind in SIGNED_KINDS:
        key = await asyncio.to_thread(generate_dkim_key, new_selector(int(now_ms)))
        sealed = seal_secrets(
            organization_id, dkim_purpose(domain), {"privateKey": key.private_key_pem}
        )
        return {
            "dkimSelector": key.selector,
            "dkimPublicKey": key.public_key,
            "dkimPrivateKey": sealed,
        }
    if kind == "resend":
        return {"ownershipToken": OWNERSHIP_PREFIX + secrets.token_urlsafe(24)}
    return {}


def records_for(row: Mapping[str, Any], *, spf_include: str | None = None) -> list[DnsRecord]:
    """The records of a row whose key material is there (an SES row: once registered)."""
    domain, kind, dmarc = row["domain"], row["providerKind"], dmarc_policy(row)
    if kind in SIGNED_KINDS:
        return smtp_records(
            domain,
            dkim_selector=row["dkimSelector"],
            dkim_public_key=row["dkimPublicKey"],
            dmarc=dmarc,
            spf_include=spf_include if kind == "smtp" else None,
        )
    if kind == "ses":
        return ses_records(
            domain,
            verification_token=row["sesVerificationToken"],
            dkim_tokens=row["sesDkimTokens"],
            mail_from=row["returnPathHost"],
            region=row["sesRegion"],
            dmarc=dmarc,
        )
    if kind == "resend":
        return [
            DnsRecord(
                "verification",
                "TXT",
                OWNERSHIP_HOST,
                row["ownershipToken"],
                note="Add the domain in Resend too, and publish the records it shows",
            ),
            dmarc_record(dmarc),
        ]
    raise ValueError(f"unknown provider kind {kind!r}")


def domain_view(row: Mapping[str, Any], now: float) -> dict[str, Any]:
    """A domain as members see it at `now` (epoch ms): without the sealed DKIM key, with its
    records as zone-file lines too, and `verificationStale` (`states.is_stale`)."""
    shown = {name: value for name, value in row.items() if name != "dkimPrivateKey"}
    shown["verificationStale"] = is_stale(row, now)
    records = records_from_document(row["dnsRecords"])
    shown["zoneFile"] = "\n".join(record.zone_line(row["domain"]) for record in records)
    return shown
