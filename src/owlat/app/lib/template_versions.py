"""Version history of templates (`emailTemplateVersions`).

A version is a whole snapshot of what the editor round-trips (name, subject, preview text
and the content JSON), captured on every save (`save`), publish (`publish`) and campaign
send (`send`). Rules, as upstream's:
- a capture whose fingerprint (SHA-256 of name, subject, preview text and content) equals
  the latest version's *and* has the same trigger is skipped: a save without edits, a
  re-publish of the same content. The same content under another trigger is a distinct
  event ("this is what went out") and is kept;
- a template keeps at most `VERSION_LIMIT` versions: a capture evicts the oldest beyond it.
Snapshots are whole, not deltas, so evicting the oldest never orphans a later one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from owlat.app.lib.session_organization import now_ms
from owlat.runtime import MutationCtx, QueryCtx

VERSION_LIMIT = 50
# How many versions past the limit one capture may evict (the read stays bounded).
PRUNE_BATCH = 25


def fingerprint(snapshot: Mapping[str, Any]) -> str:
    parts = (snapshot["name"], snapshot["subject"], snapshot.get("previewText") or "")
    key = "\0".join((*parts, snapshot["content"]))
    return hashlib.sha256(key.encode()).hexdigest()


def _newest_first(ctx: QueryCtx, template_id: str) -> Any:
    return (
        ctx.db.query("emailTemplateVersions")
        .with_index("by_template", lambda q: q.eq("templateId", template_id))
        .order("desc")
    )


async def capture_version(
    ctx: MutationCtx, template: Mapping[str, Any], trigger: str, user_id: str | None
) -> str | None:
    """Snapshot `template` (as stored now) under `trigger`; its id, or None if skipped."""
    content_hash = fingerprint(template)
    latest = await _newest_first(ctx, template["_id"]).first()
    if latest is not None and (latest["contentHash"], latest["trigger"]) == (content_hash, trigger):
        return None
    version: dict[str, Any] = {
        "organizationId": template["organizationId"],
        "templateId": template["_id"],
        "trigger": trigger,
        "content": template["content"],
        "name": template["name"],
        "subject": template["subject"],
        "contentBlockVersion": template.get("contentBlockVersion"),
        "previewText": template.get("previewText"),
        "contentBytes": float(len(template["content"].encode())),
        "contentHash": content_hash,
        "createdBy": user_id,
        # strictly after the latest one: versions order by time, captures in one ms too
        "createdAt": max(now_ms(), latest["createdAt"] + 1 if latest else 0.0),
    }
    version_id = await ctx.db.insert(
        "emailTemplateVersions", {k: v for k, v in version.items() if v is not None}
    )
    for old in (await _newest_first(ctx, template["_id"]).take(VERSION_LIMIT + PRUNE_BATCH))[
        VERSION_LIMIT:
    ]:
        await ctx.db.delete(old["_id"])
    return str(version_id)


async def list_versions(ctx: QueryCtx, template_id: str) -> list[dict[str, Any]]:
    """The template's versions, newest first, without their content."""
    rows = await _newest_first(ctx, template_id).take(VERSION_LIMIT)
    return [{k: v for k, v in row.items() if k != "content"} for row in rows]
