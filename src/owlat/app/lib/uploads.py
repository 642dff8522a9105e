"""Upload URLs a member may mint: `UPLOAD_URLS` per `UPLOAD_WINDOW_MS`, counted across the
dashboard's upload functions (media, attachments, contact import files), so that one
session cannot hand out upload URLs without end."""

from __future__ import annotations

from owlat.app.lib.errors import AuthFailure
from owlat.app.lib.rate_limits import window_count
from owlat.app.lib.session_organization import now_ms
from owlat.runtime import MutationCtx

UPLOAD_URLS = 60
UPLOAD_WINDOW_MS = 60_000


async def upload_url(ctx: MutationCtx, user_id: str, organization_id: str, max_bytes: int) -> str:
    """An upload URL bound to the organization and at most `max_bytes`, counted against
    `user_id`'s quota (refused with TOO_MANY_REQUESTS past it)."""
    count, ends = await window_count(ctx, f"upload-urls:{user_id}", UPLOAD_WINDOW_MS)
    if count > UPLOAD_URLS:
        wait = max(1, int((ends - now_ms()) / 1000))
        raise AuthFailure(
            "TOO_MANY_REQUESTS",
            f"At most {UPLOAD_URLS} upload URLs a minute; try again in {wait} s",
        )
    return str(await ctx.storage.generate_upload_url(max_bytes=max_bytes, owner=organization_id))
