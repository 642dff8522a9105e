"""Scanning a stored template and keeping the results (`contentScanResults`).

`template_parts` gives a template's stored rendering in every language it has (subject,
HTML, text part); `scan_parts` scans them (`lib/content_scan.py`) as one result and hashes
them (`content_hash`): an approval holds for exactly that content (`approvable`). `record`
stores a non-clean result of a resource (`transactional` email or `campaign`); `latest`
finds a resource's newest one; `review` notes an admin's decision on it; `note_complaint`
counts a complaint about a campaign's send on the campaign's latest result (reference §10.1
"campaign content-scan record annotated"; a campaign that scanned clean has none).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from owlat.app.lib.content_scan import ScanResult, result_of, scan
from owlat.app.lib.errors import invalid
from owlat.app.lib.templates import stored_rendering
from owlat.runtime import MutationCtx, QueryCtx

ResourceType = Literal["campaign", "transactional"]
Resource = tuple[ResourceType, str]  # (type, id)
Decision = Literal["approved", "rejected"]
# (subject, html, text) of one message as scanned
Parts = tuple[str, str, str]


def template_parts(template: Mapping[str, Any], subject: str | None = None) -> list[Parts]:
    """The template's messages, the default language first, then each translation;
    `subject` overrides the default language's subject (a campaign's own)."""
    translations = json.loads(template.get("htmlTranslations") or "{}")
    found = []
    for language in (None, *sorted(translations)):
        rendered = stored_rendering(template, language)
        chosen = subject if language is None and subject else rendered.subject
        found.append((chosen, rendered.html, rendered.text))
    return found


def scan_parts(parts: Iterable[Parts]) -> tuple[ScanResult, str]:
    """One result for all `parts` (a finding counted once) and the hash of the parts."""
    parts = list(parts)
    flags = [flag for subject, html, text in parts for flag in scan(subject, html, text).flags]
    return result_of(flags), content_hash(parts)


def content_hash(parts: Iterable[Parts]) -> str:
    """The hash of `parts` as `scan_parts` gives it (what an approval holds for)."""
    digest = hashlib.sha256()
    for message in parts:
        for part in message:
            digest.update(part.encode())
            digest.update(b"\0")
    return digest.hexdigest()


async def record(
    ctx: MutationCtx,
    organization_id: str,
    resource: Resource,
    result: ScanResult,
    content_hash: str,
    now: float,
) -> None:
    """Store `result` of `resource` unless it is clean."""
    if result.level == "clean":
        return
    resource_type, resource_id = resource
    await ctx.db.insert(
        "contentScanResults",
        {"organizationId": organization_id, "resourceType": resource_type,
         "resourceId": str(resource_id), **result.record(), "scannedAt": now,
         "contentHash": content_hash},
    )  # fmt: skip


async def latest(
    ctx: QueryCtx, organization_id: str, resource_type: ResourceType, resource_id: str
) -> dict[str, Any] | None:
    """The resource's newest stored result, or None."""
    found = await (
        ctx.db.query("contentScanResults")
        .with_index(
            "by_resource",
            lambda q: (
                q.eq("organizationId", organization_id)
                .eq("resourceType", resource_type)
                .eq("resourceId", str(resource_id))
            ),
        )
        .order("desc")
        .first()
    )
    return None if found is None else dict(found)


async def approvable(
    ctx: QueryCtx, organization_id: str, resource: Resource, parts: Iterable[Parts], changed: str
) -> dict[str, Any]:
    """The resource's newest stored result when it scanned exactly `parts` (hashed, not
    scanned again); else CONTENT_CHANGED with the message `changed`."""
    resource_type, resource_id = resource
    found = await latest(ctx, organization_id, resource_type, resource_id)
    if found is None or found["contentHash"] != content_hash(parts):
        raise invalid("CONTENT_CHANGED", changed)
    return found


async def review(
    ctx: MutationCtx, found: Mapping[str, Any], decision: Decision, user_id: str, now: float
) -> None:
    await ctx.db.patch(found["_id"], {"review": {"decision": decision, "by": user_id, "at": now}})


async def note_complaint(
    ctx: MutationCtx, organization_id: str, campaign_id: str, at: float
) -> None:
    """Count a complaint about one of the campaign's sends on its latest result."""
    found = await latest(ctx, organization_id, "campaign", campaign_id)
    if found is not None:
        await ctx.db.patch(
            found["_id"],
            {"complaints": (found.get("complaints") or 0) + 1, "lastComplaintAt": at},
        )


def view(found: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the dashboard shows of a stored result."""
    if found is None:
        return None
    shown = ("score", "level", "flags", "scannedAt", "review", "complaints", "lastComplaintAt")
    return {name: found[name] for name in shown if name in found}
