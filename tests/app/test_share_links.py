"""shareLinks:* and the share endpoints of the site port (reference §4, §7.4): a 48-hour
snapshot behind a token stored only as its hash, served as JSON and as a page that runs no
script; revoked, expired and unknown links are 404."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from owlat.app.share_links import TTL_MS
from owlat.runtime import ConvexError
from owlat.runtime.testing import in_mutation, in_query
from tests.app.conftest import Site, owner_and_editor
from tests.app.rendering.samples import text_block
from tests.app.template_samples import create


@pytest.fixture
async def site(site_on_both_engines: Site) -> Site:
    """These tests run on SQLite and PostgreSQL."""
    return site_on_both_engines


async def test_a_share_link_serves_its_snapshot_until_revoked(site: Site) -> None:
    owner, editor, _ = await owner_and_editor(site.application)
    template_id = await create(
        editor, [text_block("<p>Hello {{firstName}}</p>")], previewText="Peek"
    )
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("shareLinks:create", {"templateId": template_id})
    link = await owner.mutation("shareLinks:create", {"templateId": template_id})
    token = link["token"]
    assert len(token) == 24 and link["url"] == f"{site.site_url}/preview/{token}"
    # a snapshot: later edits do not show
    await editor.mutation(
        "emailTemplates:update",
        {"templateId": template_id, "content": json.dumps([text_block("<p>Changed</p>")])},
    )

    async def stored(ctx: Any) -> list[Any]:
        return [dict(row) for row in await ctx.db.query("shareLinks").collect()]

    assert token not in json.dumps(await in_query(site.application, stored))
    async with httpx.AsyncClient(base_url=site.site_url) as http:
        answer = await http.get(f"/share/{token}")
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        assert answer.headers["access-control-allow-origin"] == "*"
        data = answer.json()["data"]
        assert data["subject"] == "Hi Jane" and data["previewText"] == "Peek"
        assert data["organizationName"] == "Acme" and data["expiresAt"] == link["expiresAt"]
        assert "Hello Jane" in data["html"] and "Changed" not in data["html"]
        page = await http.get(link["url"])
        assert page.status_code == 200 and page.text == data["html"]
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert "sandbox" in csp and "allow-scripts" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert (await http.post(f"/share/{token}")).status_code == 405
        assert (await http.options(f"/share/{token}")).status_code == 204

        listed = await editor.query("shareLinks:list", {"templateId": template_id})
        assert [(item["active"], "tokenHash" in item) for item in listed] == [(True, False)]
        assert listed[0]["expiresAt"] - listed[0]["createdAt"] == TTL_MS == 48 * 3600 * 1000
        await owner.mutation("shareLinks:revoke", {"shareLinkId": link["shareLinkId"]})
        gone = await http.get(f"/share/{token}")
        assert gone.status_code == 404
        assert gone.json()["error"]["data"]["reason"] == "share_link_not_found"
        assert (await http.get(link["url"])).status_code == 404
        listed = await editor.query("shareLinks:list", {"templateId": template_id})
        assert listed[0]["active"] is False


async def test_expired_and_unknown_links_are_not_found(site: Site) -> None:
    owner, editor, _ = await owner_and_editor(site.application)
    template_id = await create(editor, [text_block("<p>Hello</p>")])
    link = await owner.mutation("shareLinks:create", {"templateId": template_id})

    async def expire(ctx: Any) -> None:
        for row in await ctx.db.query("shareLinks").collect():
            await ctx.db.patch(row["_id"], {"expiresAt": row["createdAt"] - 1})

    await in_mutation(site.application, expire)
    async with httpx.AsyncClient(base_url=site.site_url) as http:
        expired = await http.get(f"/share/{link['token']}")
        assert expired.status_code == 404
        assert expired.json()["error"]["data"]["reason"] == "expired"
        page = await http.get(f"/preview/{link['token']}")
        assert page.status_code == 404 and "invalid or has expired" in page.text
        unknown = await http.get("/share/" + "x" * 24)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["data"]["reason"] == "share_link_not_found"
        assert (await http.get("/preview/" + "x" * 24)).status_code == 404


async def test_a_transactional_email_has_share_links_deleted_with_it(site: Site) -> None:
    owner, _, _ = await owner_and_editor(site.application)
    email_id = await owner.mutation(
        "transactionalEmails:create",
        {"name": "Receipt", "slug": "receipt", "subject": "Order {{orderId|'#1'}}",
         "content": json.dumps([text_block("<p>Thanks {{firstName}}</p>")])},
    )  # fmt: skip
    ident = {"transactionalEmailId": email_id}
    with pytest.raises(ConvexError, match="^Give either templateId or transactionalEmailId$"):
        await owner.mutation("shareLinks:create", {"templateId": email_id, **ident})
    with pytest.raises(ConvexError, match="^Template not found$"):
        await owner.mutation("shareLinks:create", {"templateId": email_id})
    link = await owner.mutation("shareLinks:create", ident)
    async with httpx.AsyncClient(base_url=site.site_url) as http:
        data = (await http.get(f"/share/{link['token']}")).json()["data"]
        assert data["subject"] == "Order #1" and "Thanks Jane" in data["html"]
        listed = await owner.query("shareLinks:list", ident)
        assert [item["targetType"] for item in listed] == ["transactionalEmail"]
        await owner.mutation("transactionalEmails:remove", ident)
        assert (await http.get(f"/share/{link['token']}")).status_code == 404
    assert await owner.query("shareLinks:list", ident) == []
