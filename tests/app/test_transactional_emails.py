"""transactionalEmails:* (reference §2.3, §7.4): slugs unique per organization, data
variable schemas, content checked and rendered as email templates', publish rights,
attachments shared by duplicates, previews and test sends from the dashboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from owlat.app.lib.sending import quotas
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.testing import in_query
from tests.app.conftest import Caller, outbox, owner_and_editor, uploaded
from tests.app.mail_setup import settled
from tests.app.rendering.samples import text_block

BODY = [text_block("<p>Order {{orderId}} for {{name|'you'}}</p>", "t1")]
PAGE = {"numItems": 50, "cursor": None}


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


async def new_email(caller: Caller, slug: str = "order-receipt", **fields: Any) -> str:
    args = {"name": "Receipt", "slug": slug, "subject": "Order {{orderId}}", **fields}
    args.setdefault("content", json.dumps(BODY))
    return str(await caller.mutation("transactionalEmails:create", args))


async def email_of(caller: Caller, email_id: str) -> dict[str, Any]:
    found = await caller.query("transactionalEmails:get", {"transactionalEmailId": email_id})
    assert found is not None
    return dict(found)


async def test_create_checks_slug_schema_and_content_and_renders(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    email_id = await new_email(editor, dataVariablesSchema={"orderId": "string", "total": "number"})
    stored = await email_of(owner, email_id)
    assert (stored["slug"], stored["status"]) == ("order-receipt", "draft")
    assert stored["htmlContent"].startswith("<!DOCTYPE html>")
    assert "Order {{orderId}} for {{name|'you'}}" in stored["plainTextContent"]
    assert stored["dataVariablesSchema"] == {"orderId": "string", "total": "number"}
    assert sorted(stored["variables"]) == ["name", "orderId"]
    for slug in ("Order", "order--receipt", "-order", "order_receipt", "x" * 101):
        with pytest.raises(ConvexError, match="^slug: .* must be lower-case letters and digits"):
            await new_email(editor, slug)
    with pytest.raises(
        ConvexError, match='^A transactional email with slug "order-receipt" already exists$'
    ):
        await new_email(editor)
    with pytest.raises(ConvexError, match=r"^dataVariablesSchema: '1st' must start with a letter"):
        await new_email(editor, "other", dataVariablesSchema={"1st": "string"})
    with pytest.raises(ConvexError, match=r"^content\[0\]\.type: unknown block"):
        await new_email(
            editor, "other", content=json.dumps([{"id": "x", "type": "nope", "content": {}}])
        )
    listed = await editor.query("transactionalEmails:list", {"paginationOpts": PAGE})
    assert [row["_id"] for row in listed["page"]] == [email_id]
    assert "htmlContent" not in listed["page"][0]
    by_slug = await editor.query("transactionalEmails:getBySlug", {"slug": "order-receipt"})
    assert by_slug["_id"] == email_id


async def test_slugs_are_unique_per_organization_only(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    other, _, _ = await owner_and_editor(owlat, "globex")
    first = await new_email(owner)
    second = await new_email(other)
    assert first != second
    renamed = await owner.mutation(
        "transactionalEmails:update", {"transactionalEmailId": first, "slug": "receipt"}
    )
    assert renamed["slug"] == "receipt"
    await new_email(owner)  # order-receipt is free again
    with pytest.raises(ConvexError, match='slug "receipt" already exists'):
        await owner.mutation(
            "transactionalEmails:update",
            {"transactionalEmailId": await new_email(owner, "third"), "slug": "receipt"},
        )


async def test_editors_edit_drafts_and_admins_publish(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    email_id = await new_email(editor)
    ident = {"transactionalEmailId": email_id}
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("transactionalEmails:publish", ident)
    empty = await new_email(owner, "empty", content="[]")
    with pytest.raises(ConvexError, match="^content: a transactional email needs content"):
        await owner.mutation("transactionalEmails:publish", {"transactionalEmailId": empty})
    published = await owner.mutation("transactionalEmails:publish", ident)
    assert published["status"] == "published" and published["publishedAt"] > 0
    with pytest.raises(ConvexError, match="^The transactional email is published: unpublish"):
        await editor.mutation("transactionalEmails:update", {**ident, "name": "New"})
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation(
            "transactionalEmails:update", {**ident, "name": "New", "forceWhilePublished": True}
        )
    changed = await owner.mutation(
        "transactionalEmails:update", {**ident, "name": "New", "forceWhilePublished": True}
    )
    assert (changed["name"], changed["status"]) == ("New", "published")
    await owner.mutation("transactionalEmails:unpublish", ident)
    assert (await email_of(owner, email_id))["status"] == "draft"
    copy_id = await editor.mutation("transactionalEmails:duplicate", ident)
    again = await editor.mutation("transactionalEmails:duplicate", ident)
    copies = [await email_of(owner, i) for i in (copy_id, again)]
    assert [(c["name"], c["slug"], c["status"]) for c in copies] == [
        ("New (Copy)", "order-receipt-copy", "draft"),
        ("New (Copy)", "order-receipt-copy-2", "draft"),
    ]
    await editor.mutation("transactionalEmails:remove", ident)
    assert await owner.query("transactionalEmails:get", ident) is None


async def test_preview_personalizes_with_data_variables(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    email_id = await new_email(owner)
    preview = await owner.query(
        "transactionalEmails:preview",
        {"transactionalEmailId": email_id, "dataVariables": {"orderId": "A-17"}},
    )
    assert preview["subject"] == "Order A-17"
    assert "Order A-17 for you" in preview["text"] and preview["missing"] == []
    assert preview["language"] == "en"
    bare = await owner.query("transactionalEmails:preview", {"transactionalEmailId": email_id})
    assert bare["subject"] == "Order " and bare["missing"] == ["orderId"]


async def test_preview_shows_desktop_mobile_dark_and_each_language(owlat: Application) -> None:
    """The dashboard's preview frame (TemplatePreview.vue) takes a transactional email's
    preview as a template's: forced light and dark HTML, the two widths, per language."""
    owner, _, _ = await owner_and_editor(owlat)
    email_id = await new_email(owner)
    ident = {"transactionalEmailId": email_id}
    await owner.mutation("transactionalEmails:addTranslation", {**ident, "language": "de"})
    await owner.mutation(
        "transactionalEmails:updateTranslation",
        {**ident, "language": "de", "subject": "Bestellung {{orderId}}",
         "blocks": {"t1": {"html": "<p>Bestellung {{orderId}}</p>"}}},
    )  # fmt: skip
    preview = await owner.query("transactionalEmails:preview", ident)
    assert preview["widths"] == {"desktop": 600, "mobile": 375} and preview["stale"] is False
    assert 'content="light"' in preview["lightHtml"] and 'content="dark"' in preview["darkHtml"]
    assert "@media all{" in preview["darkHtml"] and "@media all{" not in preview["lightHtml"]
    german = await owner.query(
        "transactionalEmails:preview", {**ident, "language": "de", "dataVariables": {"orderId": 7}}
    )
    assert (german["language"], german["subject"]) == ("de", "Bestellung 7")
    assert "Bestellung 7" in german["lightHtml"] and "Bestellung 7" in german["darkHtml"]
    other = await owner.query("transactionalEmails:preview", {**ident, "language": "fr"})
    assert (other["language"], other["subject"]) == ("en", "Order ")


async def _attach(owlat: Application, caller: Caller, organization_id: str, email_id: str) -> str:
    storage_id = await uploaded(owlat, organization_id, b"%PDF-1.4 terms")
    await caller.mutation(
        "transactionalEmails:addAttachment",
        {"transactionalEmailId": email_id, "storageId": storage_id, "filename": "terms.pdf"},
    )
    return storage_id


async def _file_exists(owlat: Application, storage_id: str) -> bool:
    async def read(ctx: Any) -> bool:
        return await ctx.db.system.get(storage_id) is not None

    return bool(await in_query(owlat, read))


async def test_attachments_are_the_organizations_files_and_shared_by_copies(
    owlat: Application,
) -> None:
    owner, editor, organization_id = await owner_and_editor(owlat)
    _, _, other_organization = await owner_and_editor(owlat, "globex")
    email_id = await new_email(editor)
    ident = {"transactionalEmailId": email_id}
    foreign = await uploaded(owlat, other_organization, b"secret")
    with pytest.raises(ConvexError, match="^File not found$"):
        await editor.mutation(
            "transactionalEmails:addAttachment",
            {**ident, "storageId": foreign, "filename": "x.pdf"},
        )
    mine = await uploaded(owlat, organization_id, b"MZ...")
    with pytest.raises(ConvexError, match=r"^filename: has an extension mail providers refuse"):
        await editor.mutation(
            "transactionalEmails:addAttachment",
            {**ident, "storageId": mine, "filename": "setup.exe"},
        )
    with pytest.raises(ConvexError, match="^filename: must not contain path separators$"):
        await editor.mutation(
            "transactionalEmails:addAttachment",
            {**ident, "storageId": mine, "filename": "../terms.pdf"},
        )
    storage_id = await _attach(owlat, editor, organization_id, email_id)
    stored = await email_of(owner, email_id)
    assert stored["attachments"] == [
        {"filename": "terms.pdf", "contentType": "application/pdf", "storageId": storage_id,
         "size": 14.0},
    ]  # fmt: skip
    copy_id = await editor.mutation("transactionalEmails:duplicate", ident)
    assert (await email_of(owner, copy_id))["attachments"] == stored["attachments"]
    await editor.mutation(
        "transactionalEmails:removeAttachment", {**ident, "storageId": storage_id}
    )
    assert await _file_exists(owlat, storage_id)  # the copy still names it
    await editor.mutation("transactionalEmails:remove", {"transactionalEmailId": copy_id})
    assert not await _file_exists(owlat, storage_id)


async def test_a_test_send_goes_out_with_the_attachments_and_checked_variables(
    owlat: Application, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, editor, organization_id = await owner_and_editor(owlat)
    email_id = await new_email(owner, dataVariablesSchema={"orderId": "string"})
    await _attach(owlat, owner, organization_id, email_id)
    args = {"transactionalEmailId": email_id, "to": "Me@Example.com"}
    with pytest.raises(
        ConvexError, match='^Variable "orderId" should be of type "string", got "number"$'
    ):
        await editor.mutation(
            "transactionalEmails:sendTest", {**args, "dataVariables": {"orderId": 17}}
        )
    send_id = await editor.mutation(
        "transactionalEmails:sendTest", {**args, "dataVariables": {"orderId": "A-17"}}
    )
    send = await settled(editor, send_id)
    assert (send["status"], send["kind"], send["transactionalEmailId"]) == (
        "sent", "test", email_id,
    )  # fmt: skip
    (mail,) = [m for m in outbox(tmp_path) if m["To"] == "me@example.com"]
    assert mail["Subject"] == "[TEST] Order A-17"
    (attachment,) = mail.iter_attachments()
    assert attachment.get_filename() == "terms.pdf"
    assert attachment.get_content() == b"%PDF-1.4 terms"
    monkeypatch.setattr(quotas, "TEST_SENDS", 1)
    with pytest.raises(ConvexError, match="^At most 1 test sends per 10 minutes"):
        await editor.mutation("transactionalEmails:sendTest", args)
    # the email's own sends, listed on its page: not another email's
    other_id = await new_email(owner, "other")
    mine = await editor.query(
        "transactionalSends:list", {"paginationOpts": PAGE, "transactionalEmailId": email_id}
    )
    assert [row["_id"] for row in mine["page"]] == [send_id] and "html" not in mine["page"][0]
    none = await editor.query(
        "transactionalSends:list", {"paginationOpts": PAGE, "transactionalEmailId": other_id}
    )
    assert none["page"] == [] and none["isDone"]
