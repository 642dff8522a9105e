"""Version history of a template (reference §2.3; rules in `lib/template_versions.py`).

`list` (newest first, without content) and `get` for any member; `restore` puts a
version's name, subject, preview text and content back as a new save, with the same rights
as `emailTemplates:update` (a published template needs `forceWhilePublished` and
`templates:manage`).
"""

from __future__ import annotations

import builtins
from typing import Any

from owlat.app.lib.errors import not_found
from owlat.app.lib.session_organization import get_team_id_from_session
from owlat.app.lib.template_versions import list_versions
from owlat.app.lib.templates import FORCE, editable_template, find_template, save
from owlat.runtime import MutationCtx, QueryCtx, mutation, query, v


async def _version(ctx: QueryCtx, organization_id: str, version_id: str) -> dict[str, Any] | None:
    normalized = ctx.db.normalize_id("emailTemplateVersions", version_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id:
        return None
    return dict(found)


@query(args={"templateId": v.string()})
async def list(  # shadows the builtin
    ctx: QueryCtx, args: dict[str, Any]
) -> builtins.list[dict[str, Any]]:
    """The template's versions, newest first (at most 50, without content); [] for an
    unknown template."""
    organization_id = await get_team_id_from_session(ctx)
    template = await find_template(ctx, organization_id, args["templateId"])
    return [] if template is None else await list_versions(ctx, template["_id"])


@query(args={"versionId": v.string()})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    """The version with its content, or None."""
    organization_id = await get_team_id_from_session(ctx)
    return await _version(ctx, organization_id, args["versionId"])


@mutation(args={"versionId": v.string(), **FORCE})
async def restore(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Save the version's name, subject, preview text and content into its template;
    returns the template."""
    organization_id = await get_team_id_from_session(ctx)
    version = await _version(ctx, organization_id, args["versionId"])
    if version is None:
        raise not_found("Version")
    context, template = await editable_template(ctx, {**args, "templateId": version["templateId"]})
    changes = {k: version.get(k) for k in ("name", "subject", "previewText", "content")}
    return await save(ctx, context.team_id, template, changes, context.user_id)
