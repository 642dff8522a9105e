"""emailTemplates:* and emailTemplateVersions:* (reference §2.3, §7.4): content checked on
save with paths, server-side rendering with the organization's theme, versions (de-dup,
cap), publish rights (editors edit drafts, admins publish), translations, previews."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from owlat.app.lib.template_versions import VERSION_LIMIT
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_query
from tests.app.conftest import Caller, Site, owner_and_editor, signed_in, with_organization
from tests.app.rendering.samples import kitchen_sink, text_block
from tests.app.template_samples import button, columns, create, get


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


PAGE = {"numItems": 50, "cursor": None}


async def versions(caller: Caller, template_id: str) -> list[dict[str, Any]]:
    return list(await caller.query("emailTemplateVersions:list", {"templateId": template_id}))


# -- content, rendering ------------------------------------------------------------------------


async def test_content_is_checked_on_save_with_the_path_of_the_bad_value(
    owlat: Application,
) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    bad = [text_block("<p>Hi</p>"), columns([], [button("javascript:alert(1)")])]
    with pytest.raises(
        ConvexError, match=r"^content\[1\]\.columns\[1\]\[0\]\.url: must be an http\(s\)"
    ):
        await create(editor, bad)
    template_id = await create(editor, [text_block("<p>First</p>")])
    before = await get(owner, template_id)
    for content, message in (
        ([text_block("<p>{{bad name}}</p>")], r"^content\[0\]\.html: malformed placeholder"),
        ([{"id": "x", "type": "video2", "content": {}}], r"^content\[0\]\.type: unknown block"),
        ("{not json", r"^content: is not valid JSON"),
    ):
        raw = content if isinstance(content, str) else json.dumps(content)
        with pytest.raises(ConvexError, match=message):
            await editor.mutation(
                "emailTemplates:update", {"templateId": template_id, "content": raw}
            )
    with pytest.raises(ConvexError, match=r"^subject: '\{\{first name\}\}' is not a placeholder"):
        await editor.mutation(
            "emailTemplates:update", {"templateId": template_id, "subject": "{{first name}}"}
        )
    assert await get(owner, template_id) == before  # nothing changed
    assert len(await versions(owner, template_id)) == 1


async def test_saving_renders_html_and_text_with_the_organization_theme(
    owlat: Application,
) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    await owner.mutation(
        "organizationSettings:update", {"brandTheme": {"backgroundColor": "#123456"}}
    )
    template_id = await create(editor, kitchen_sink(), previewText="Read me")
    stored = await get(owner, template_id)
    assert stored["htmlContent"].startswith("<!DOCTYPE html>")
    assert "#123456" in stored["htmlContent"] and "Read me" in stored["htmlContent"]
    assert "Hello {{firstName|'there'}}" in stored["plainTextContent"]
    assert stored["htmlRenderState"] == {"stale": False, "failureCount": 0}
    assert stored["status"] == "draft" and stored["supportedLanguages"] == ["en"]
    assert "firstName" in stored["variables"]
    override = await editor.mutation(
        "emailTemplates:update", {"templateId": template_id, "plainTextOverride": "Plain!"}
    )
    assert override["plainTextContent"] == "Plain!"


async def test_list_filters_searches_and_pages(owlat: Application) -> None:
    _, editor, _ = await owner_and_editor(owlat)
    for i in range(5):
        await create(editor, [text_block("<p>x</p>")], name=f"News {i}", subject="Monthly")
    await create(editor, [], name="Receipt", subject="Your order", type="transactional")
    first = await editor.query("emailTemplates:list", {"paginationOpts": {**PAGE, "numItems": 4}})
    assert [t["name"] for t in first["page"]] == ["Receipt", "News 4", "News 3", "News 2"]
    assert "content" not in first["page"][0] and "htmlContent" not in first["page"][0]
    rest = await editor.query(
        "emailTemplates:list",
        {"paginationOpts": {"numItems": 4, "cursor": first["continueCursor"]}},
    )
    assert [t["name"] for t in rest["page"]] == ["News 1", "News 0"] and rest["isDone"]
    found = await editor.query("emailTemplates:list", {"paginationOpts": PAGE, "search": "ORDER"})
    assert [t["name"] for t in found["page"]] == ["Receipt"]
    marketing = await editor.query(
        "emailTemplates:list", {"paginationOpts": PAGE, "type": "marketing", "status": "draft"}
    )
    assert len(marketing["page"]) == 5
    published = await editor.query(
        "emailTemplates:list", {"paginationOpts": PAGE, "status": "published"}
    )
    assert published["page"] == []


# -- versions ----------------------------------------------------------------------------------


async def test_versions_skip_unchanged_saves_and_keep_the_newest_fifty(
    owlat: Application,
) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    template_id = await create(editor, [text_block("<p>v0</p>")])
    same = {"templateId": template_id, "content": json.dumps([text_block("<p>v0</p>")])}
    await editor.mutation("emailTemplates:update", same)
    await editor.mutation("emailTemplates:update", {"templateId": template_id, "name": "Welcome"})
    assert [v["trigger"] for v in await versions(owner, template_id)] == ["save"]
    await owner.mutation("emailTemplates:publish", {"templateId": template_id})
    await owner.mutation("emailTemplates:publish", {"templateId": template_id})
    # same content, another trigger: a distinct event, kept once
    assert [v["trigger"] for v in await versions(owner, template_id)] == ["publish", "save"]
    await owner.mutation("emailTemplates:unpublish", {"templateId": template_id})
    for i in range(1, VERSION_LIMIT + 5):
        content = json.dumps([text_block(f"<p>v{i}</p>")])
        await editor.mutation(
            "emailTemplates:update", {"templateId": template_id, "content": content}
        )
    listed = await versions(owner, template_id)
    assert len(listed) == VERSION_LIMIT and "content" not in listed[0]

    async def stored(ctx: Any) -> list[str]:
        rows = await ctx.db.query("emailTemplateVersions").collect()
        return sorted(json.loads(r["content"])[0]["content"]["html"] for r in rows)

    kept = await in_query(owlat, stored)
    assert len(kept) == VERSION_LIMIT and "<p>v0</p>" not in kept and "<p>v54</p>" in kept
    newest = await owner.query("emailTemplateVersions:get", {"versionId": listed[0]["_id"]})
    assert "v54" in newest["content"]
    oldest = await owner.query("emailTemplateVersions:get", {"versionId": listed[-1]["_id"]})
    restored = await editor.mutation("emailTemplateVersions:restore", {"versionId": oldest["_id"]})
    assert restored["content"] == oldest["content"] and restored["plainTextContent"] == "v5\n"
    # the restore is a save: a new version, and the oldest one went
    assert len(await versions(owner, template_id)) == VERSION_LIMIT


# -- publishing and rights -----------------------------------------------------------------


async def test_editors_edit_drafts_and_only_admins_publish(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    template_id = await create(editor, [text_block("<p>Draft</p>")])
    await editor.mutation("emailTemplates:update", {"templateId": template_id, "name": "Mine"})
    copy_id = await editor.mutation("emailTemplates:duplicate", {"templateId": template_id})
    assert (await get(owner, copy_id))["name"] == "Mine (Copy)"
    for path in ("emailTemplates:publish", "emailTemplates:unpublish"):
        with pytest.raises(ConvexError, match="^Admin access required$"):
            await editor.mutation(path, {"templateId": template_id})
    published = await owner.mutation("emailTemplates:publish", {"templateId": template_id})
    assert published["status"] == "published" and published["publishedAt"] > 0
    edit = {"templateId": template_id, "name": "Changed"}
    with pytest.raises(ConvexError, match="^The template is published: unpublish it first"):
        await editor.mutation("emailTemplates:update", edit)
    with pytest.raises(ConvexError, match="^The template is published"):
        await owner.mutation("emailTemplates:update", edit)
    forced = {**edit, "forceWhilePublished": True}
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("emailTemplates:update", forced)
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation(
            "emailTemplates:remove", {"templateId": template_id, "forceWhilePublished": True}
        )
    with pytest.raises(ConvexError, match="^The template is published"):
        await owner.mutation("emailTemplates:remove", {"templateId": template_id})
    assert (await owner.mutation("emailTemplates:update", forced))["name"] == "Changed"
    await editor.mutation("emailTemplates:remove", {"templateId": copy_id})
    assert await owner.query("emailTemplates:get", {"templateId": copy_id}) is None


async def test_publishing_needs_a_subject(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    template_id = await create(editor, [text_block("<p>x</p>")], subject="")
    with pytest.raises(ConvexError, match="^subject: a template needs a subject"):
        await owner.mutation("emailTemplates:publish", {"templateId": template_id})


async def test_delete_takes_versions_and_share_links(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    template_id = await create(editor, [text_block("<p>x</p>")])
    await owner.mutation("shareLinks:create", {"templateId": template_id})
    await editor.mutation("emailTemplates:remove", {"templateId": template_id})

    async def left(ctx: Any) -> list[int]:
        tables = ("emailTemplates", "emailTemplateVersions", "shareLinks")
        return [len(await ctx.db.query(table).collect()) for table in tables]

    assert await in_query(owlat, left) == [0, 0, 0]


# -- translations ------------------------------------------------------------------------------


async def test_translations_render_per_language_and_swap_with_the_default(
    owlat: Application,
) -> None:
    _, editor, _ = await owner_and_editor(owlat)
    blocks = [text_block("<p>Hello</p>", "t1"), button("https://example.com", "b1")]
    template_id = await create(editor, blocks, subject="Welcome")
    added = await editor.mutation(
        "emailTemplates:addTranslation", {"templateId": template_id, "language": "de"}
    )
    assert added["supportedLanguages"] == ["en", "de"]
    with pytest.raises(ConvexError, match="^language: 'DE!' is not a language code"):
        await editor.mutation(
            "emailTemplates:addTranslation", {"templateId": template_id, "language": "DE!"}
        )
    german = {
        "templateId": template_id,
        "language": "de",
        "subject": "Willkommen",
        "blocks": {"t1": {"html": "<p>Hallo</p>"}, "b1": {"buttonText": "Los"}},
    }
    await editor.mutation("emailTemplates:updateTranslation", german)
    bad = {**german, "blocks": {"t1": {"html": "<p>{{kaputt name}}</p>"}}}
    with pytest.raises(ConvexError, match=r"^translations\.de\.content\[0\]\.html: malformed"):
        await editor.mutation("emailTemplates:updateTranslation", bad)
    with pytest.raises(ConvexError, match=r"^translations\.de\.blocks\.nope: no such block"):
        await editor.mutation(
            "emailTemplates:updateTranslation", {**german, "blocks": {"nope": {"html": "x"}}}
        )
    resolved = await editor.query(
        "emailTemplates:getForLanguage", {"templateId": template_id, "language": "de"}
    )
    assert resolved["subject"] == "Willkommen" and resolved["language"] == "de"
    assert "Hallo" in resolved["htmlContent"] and "Los" in resolved["htmlContent"]
    assert "Hello" not in resolved["htmlContent"]
    preview = await editor.query(
        "emailTemplates:preview", {"templateId": template_id, "language": "de"}
    )
    assert preview["subject"] == "Willkommen" and "Hallo" in preview["text"]
    swapped = await editor.mutation(
        "emailTemplates:setDefaultLanguage", {"templateId": template_id, "language": "de"}
    )
    assert swapped["defaultLanguage"] == "de" and swapped["subject"] == "Willkommen"
    assert "Hallo" in swapped["htmlContent"] and 'lang="de"' in swapped["htmlContent"]
    english = json.loads(swapped["translations"])["en"]
    assert english["subject"] == "Welcome" and english["blocks"]["t1"] == {"html": "<p>Hello</p>"}
    removed = await editor.mutation(
        "emailTemplates:removeTranslation", {"templateId": template_id, "language": "en"}
    )
    assert removed["supportedLanguages"] == ["de"] and "translations" not in removed


# -- preview -----------------------------------------------------------------------------------


async def test_preview_personalizes_for_a_contact_of_the_organization(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    blocks = [text_block("<p>Hi {{firstName|'friend'}}, plan {{plan}}</p>")]
    template_id = await create(editor, blocks, subject="For {{firstName}}")
    sample = await editor.query("emailTemplates:preview", {"templateId": template_id})
    assert sample["subject"] == "For Jane" and sample["missing"] == ["plan"]
    assert sample["widths"] == {"desktop": 600, "mobile": 375}
    assert "prefers-color-scheme:dark" in sample["html"]
    assert "@media all{" in sample["darkHtml"] and "@media all{" not in sample["html"]
    # each preview is one scheme, whatever the viewer's: the frame follows the system's
    assert '<meta name="color-scheme" content="dark">' in sample["darkHtml"]
    light = sample["lightHtml"]
    assert "prefers-color-scheme" not in light and "@media not all{" in light
    assert '<meta name="color-scheme" content="light">' in light
    await owner.mutation(
        "contactProperties:create", {"key": "plan", "label": "Plan", "type": "string"}
    )
    contact_id = await owner.mutation(
        "contacts:createFromSession",
        {"email": "ada@example.com", "firstName": "Ada", "properties": {"plan": "pro"}},
    )
    personal = await editor.query(
        "emailTemplates:preview", {"templateId": template_id, "contactId": contact_id}
    )
    assert personal["subject"] == "For Ada" and "Hi Ada, plan pro" in personal["text"]
    stranger = await signed_in(owlat, "other@example.com")
    await with_organization(stranger, "other")
    other_contact = await stranger.mutation(
        "contacts:createFromSession", {"email": "z@example.com", "firstName": "Zed"}
    )
    with pytest.raises(ConvexError, match="^Contact not found$"):
        await editor.query(
            "emailTemplates:preview", {"templateId": template_id, "contactId": other_contact}
        )
    with pytest.raises(ConvexError, match="^Template not found$"):
        await stranger.query("emailTemplates:preview", {"templateId": template_id})


async def test_a_template_too_large_to_store_is_refused_with_a_clear_error(
    owlat: Application,
) -> None:
    """Content, rendered HTML and translations share one document (at most 1 MiB)."""
    owner, editor, _ = await owner_and_editor(owlat)
    words = " ".join(f"word{i}" for i in range(4_500))  # ~45 KB a block, 360 KB in all
    template_id = await create(editor, [text_block(f"<p>{words}</p>", f"t{i}") for i in range(8)])
    before = await get(owner, template_id)
    with pytest.raises(ConvexError, match="^content: too large to store with its rendered HTML"):
        await editor.mutation(
            "emailTemplates:addTranslation", {"templateId": template_id, "language": "de"}
        )
    assert await get(owner, template_id) == before


async def test_a_five_megabyte_raw_html_block_over_http_is_refused_and_nothing_saved(
    site_on_both_engines: Site,
) -> None:
    """`emailTemplates:update` as the dashboard calls it (POST /api/mutation with the
    session's token): the precise error with the block's path, the template unchanged."""
    site = site_on_both_engines
    async with site.browser() as browser:
        signed_up = await browser.post(
            "/sign-up/email",
            json={"email": "ann@example.com", "password": "correct-horse-1", "name": "Ann"},
        )
        assert signed_up.status_code == 200, signed_up.text
        made = await browser.post("/organization/create", json={"name": "Acme", "slug": "acme"})
        assert made.status_code == 200, made.text
        token = (await browser.get("/token")).json()["token"]
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=site.url, headers=headers, timeout=60) as api:

        async def call(kind: str, path: str, args: dict[str, Any]) -> dict[str, Any]:
            answer = await api.post(
                f"/api/{kind}", json={"path": path, "args": args, "format": "json"}
            )
            assert answer.status_code in (200, 400), answer.text[:500]
            return dict(answer.json())

        created = await call(
            "mutation",
            "emailTemplates:create",
            {"name": "News", "type": "marketing", "subject": "Hi",
             "content": json.dumps([text_block("<p>Before</p>")])},
        )  # fmt: skip
        template_id = created["value"]
        before = await call("query", "emailTemplates:get", {"templateId": template_id})
        huge = {"id": "r", "type": "rawHtml", "content": {"html": "<p>" + "x" * 5_000_000 + "</p>"}}
        content = json.dumps([text_block("<p>After</p>"), huge])
        refused = await call(
            "mutation", "emailTemplates:update", {"templateId": template_id, "content": content}
        )
        assert refused["status"] == "error", str(refused)[:500]
        message = "content[1].html: 5,000,007 characters, over the limit of 100,000"
        assert refused["errorData"] == message  # what the dashboard shows
        assert refused["errorMessage"].endswith(f"Uncaught ConvexError: {message}")
        after = await call("query", "emailTemplates:get", {"templateId": template_id})
    assert after == before and "<p>Before</p>" in after["value"]["content"]
