"""Media library (reference §7.4): images uploaded for templates.

Upload: `generateUploadUrl` gives a URL bound to the organization (the file's `owner`) that
refuses more than `OWLAT_MEDIA_MAX_BYTES` while it streams (413); POST the image there with
its Content-Type, then `create({storageId, filename, alt?, tags?})`, an action: the file
must be the organization's own upload ("File not found" otherwise: another organization's
storage id is refused) and within the size limit; its first bytes must be a PNG, JPEG, GIF
or WebP image, uploaded as that type and named with its extension (`lib/media.py`). The
asset records the type and pixel size read from the bytes and the file's public URL.
Reads: any member; writes: `media:manage`.
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib import instance
from owlat.app.lib.audience import PAGINATION_OPTS, page_options
from owlat.app.lib.errors import invalid, not_found
from owlat.app.lib.media import (
    SNIFF_BYTES,
    check_declared_type,
    clean_alt,
    clean_filename,
    clean_tags,
    searchable_text,
    sniff_image,
)
from owlat.app.lib.permissions import require_permission
from owlat.app.lib.session_organization import (
    MutationContext,
    get_mutation_context,
    get_team_id_from_session,
    now_ms,
)
from owlat.app.lib.uploads import upload_url
from owlat.runtime import (
    UNDEFINED,
    ActionCtx,
    MutationCtx,
    QueryCtx,
    action,
    internal,
    internal_mutation,
    internal_query,
    mutation,
    query,
    v,
)

MAX_SEARCH = 200
UPLOAD = {"storageId": v.id("_storage")}


async def _manager(ctx: QueryCtx) -> MutationContext:
    context = await get_mutation_context(ctx)
    require_permission(context.role, "media:manage")
    return context


async def _upload(ctx: QueryCtx, organization_id: str, storage_id: str) -> dict[str, Any]:
    """The organization's uploaded file, within the size limit, not yet an asset."""
    stored = await ctx.db.system.get(storage_id)
    if stored is None or stored.get("owner") != organization_id:
        raise not_found("File")
    limit = instance.current().media_max_bytes
    if stored["size"] > limit:
        raise invalid("FILE_TOO_LARGE", f"The file is over the media limit of {limit:,} bytes")
    used = await (
        ctx.db.query("mediaAssets").with_index(
            "by_storage_id", lambda q: q.eq("storageId", storage_id)
        )
    ).first()
    if used is not None:
        raise invalid("FILE_IN_USE", "This file is already in the media library")
    return dict(stored)


async def _asset(ctx: QueryCtx, organization_id: str, asset_id: str) -> dict[str, Any] | None:
    normalized = ctx.db.normalize_id("mediaAssets", asset_id)
    found = None if normalized is None else await ctx.db.get(normalized)
    if found is None or found["organizationId"] != organization_id:
        return None
    return dict(found)


# -- upload ------------------------------------------------------------------------------------


@mutation(args={})
async def generate_upload_url(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """A URL to POST one image to (the reply holds its `storageId`)."""
    context = await _manager(ctx)
    limit = instance.current().media_max_bytes
    return await upload_url(ctx, context.user_id, context.team_id, limit)


@action(
    args={
        **UPLOAD,
        "filename": v.string(),
        "alt": v.optional(v.string()),
        "tags": v.optional(v.array(v.string())),
    }
)
async def create(ctx: ActionCtx, args: dict[str, Any]) -> str:
    """Add an uploaded image to the media library (see the module docstring); its id."""
    upload = await ctx.run_query(internal.media_assets.upload_of, {"storageId": args["storageId"]})
    head = await ctx.storage.read_range(args["storageId"], 0, SNIFF_BYTES) or b""
    image = sniff_image(head)
    if image is None:
        raise invalid("INVALID_FILE_TYPE", "The file is not a PNG, JPEG, GIF or WebP image")
    check_declared_type(upload.get("contentType"), image)
    asset = {
        "storageId": args["storageId"],
        "filename": clean_filename(args["filename"], image),
        "mimeType": image.mime_type,
        "alt": clean_alt(args.get("alt") or ""),
        "tags": clean_tags(args.get("tags") or []),
        "width": image.width,
        "height": image.height,
    }
    created = await ctx.run_mutation(
        internal.media_assets.insert, {k: val for k, val in asset.items() if val is not None}
    )
    return str(created)


@internal_query(args=UPLOAD)
async def upload_of(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:
    """The caller's (`media:manage`) uploaded file, checked as `create` needs it."""
    context = await _manager(ctx)
    stored = await _upload(ctx, context.team_id, args["storageId"])
    return {"size": stored["size"], "contentType": stored.get("contentType")}


@internal_mutation(
    args={
        **UPLOAD,
        "filename": v.string(),
        "mimeType": v.string(),
        "alt": v.optional(v.string()),
        "tags": v.array(v.string()),
        "width": v.optional(v.number()),
        "height": v.optional(v.number()),
    }
)
async def insert(ctx: MutationCtx, args: dict[str, Any]) -> str:
    """Record a checked upload (the caller and the file are checked again)."""
    context = await _manager(ctx)
    stored = await _upload(ctx, context.team_id, args["storageId"])
    url = await ctx.storage.get_url(args["storageId"])
    now = now_ms()
    asset = {
        **args,
        "organizationId": context.team_id,
        "fileSize": stored["size"],
        "url": url,
        "uploadedBy": context.user_id,
        "searchableText": searchable_text(args["filename"], args.get("alt"), args["tags"]),
        "createdAt": now,
        "updatedAt": now,
    }
    return str(await ctx.db.insert("mediaAssets", asset))


# -- the library -------------------------------------------------------------------------------


@query(
    args={
        "paginationOpts": PAGINATION_OPTS,
        "search": v.optional(v.string()),
        "tag": v.optional(v.string()),
    }
)
async def list(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any]:  # shadows the builtin
    """A page of images, newest first; `search` finds a piece of the file name, alt text
    or a tag; `tag` keeps those with that tag."""
    organization_id = await get_team_id_from_session(ctx)
    found = (
        ctx.db.query("mediaAssets")
        .with_index("by_org_created", lambda q: q.eq("organizationId", organization_id))
        .order("desc")
    )
    search = (args.get("search") or "").strip().lower()[:MAX_SEARCH]
    if search:
        found = found.filter(lambda q: q.contains(q.field("searchableText"), search))
    tag = (args.get("tag") or "").strip().lower()
    if tag:
        found = found.filter(lambda q: q.includes(q.field("tags"), tag))
    return await found.paginate(page_options(args["paginationOpts"]))


@query(args={"assetId": v.string()})
async def get(ctx: QueryCtx, args: dict[str, Any]) -> dict[str, Any] | None:
    organization_id = await get_team_id_from_session(ctx)
    return await _asset(ctx, organization_id, args["assetId"])


@mutation(
    args={
        "assetId": v.string(),
        "alt": v.optional(v.string()),
        "tags": v.optional(v.array(v.string())),
    }
)
async def update(ctx: MutationCtx, args: dict[str, Any]) -> dict[str, Any]:
    """Change the alt text ("" clears it) and the tags; returns the asset."""
    context = await _manager(ctx)
    asset = await _asset(ctx, context.team_id, args["assetId"])
    if asset is None:
        raise not_found("Media asset")
    alt = asset.get("alt") if args.get("alt") is None else clean_alt(args["alt"])
    tags = (asset.get("tags") or []) if args.get("tags") is None else clean_tags(args["tags"])
    patch = {
        "alt": UNDEFINED if alt is None else alt,
        "tags": tags,
        "searchableText": searchable_text(asset["filename"], alt, tags),
        "updatedAt": now_ms(),
    }
    await ctx.db.patch(asset["_id"], patch)
    return {k: val for k, val in {**asset, **patch}.items() if val is not UNDEFINED}


@mutation(args={"assetId": v.string()})
async def remove(ctx: MutationCtx, args: dict[str, Any]) -> None:
    """Delete the asset and its file (templates that show it lose the image)."""
    context = await _manager(ctx)
    asset = await _asset(ctx, context.team_id, args["assetId"])
    if asset is None:
        raise not_found("Media asset")
    await ctx.db.delete(asset["_id"])
    await ctx.storage.delete(asset["storageId"])
