"""mediaAssets:* and lib/media.py (reference §7.4): uploads bound to the organization and
size-limited, images recognised by their bytes, the library's search, tags and deletion."""

from __future__ import annotations

from typing import Any

import pytest

from owlat.app.lib import instance
from owlat.app.lib.media import ImageInfo, sniff_image
from owlat.app.lib.uploads import UPLOAD_URLS
from owlat.runtime import ConvexError
from owlat.runtime.application import Application
from owlat.runtime.storage import store_file
from owlat.runtime.storage.upload_tokens import UploadGrant
from owlat.runtime.testing import in_query
from tests.app.conftest import (
    BASE_URL,
    FAST,
    Caller,
    owner_and_editor,
    signed_in,
    with_organization,
)
from tests.app.template_samples import png


@pytest.fixture
async def owlat(owlat_on_both_engines: Application) -> Application:
    """These tests run on SQLite and PostgreSQL."""
    return owlat_on_both_engines


PAGE = {"numItems": 20, "cursor": None}


async def upload(app: Application, owner: str, data: bytes, content_type: str = "image/png") -> str:
    return await store_file(app, data, content_type=content_type, grant=UploadGrant(owner=owner))


async def add(caller: Caller, storage_id: str, filename: str = "hero.png", **fields: Any) -> str:
    args = {"storageId": storage_id, "filename": filename, **fields}
    outcome = await caller.app.run_action("mediaAssets:create", args, identity=caller.identity)
    return str(outcome.value)


def test_images_are_recognised_by_their_bytes() -> None:
    assert sniff_image(png(640, 480)) == ImageInfo("image/png", 640, 480)
    assert sniff_image(b"GIF89a\x20\x03\x58\x02rest") == ImageInfo("image/gif", 800, 600)
    jpeg = (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xc0\x00\x11\x08\x01\xe0\x02\x80\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )
    assert sniff_image(jpeg) == ImageInfo("image/jpeg", 640, 480)
    vp8x = (
        b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00"
        + b"\x7f\x02\x00\xdf\x01\x00"
    )
    assert sniff_image(vp8x) == ImageInfo("image/webp", 640, 480)
    for not_an_image in (b"<svg onload=alert(1)>", b"<html>", b"%PDF-1.7", b""):
        assert sniff_image(not_an_image) is None


async def test_an_upload_becomes_an_asset_with_its_type_and_size(owlat: Application) -> None:
    owner, editor, organization_id = await owner_and_editor(owlat)
    url = await owner.mutation("mediaAssets:generateUploadUrl")
    assert owlat.storage is not None
    grant = owlat.storage.tokens.check(url.partition("?token=")[2])
    assert grant == UploadGrant(max_bytes=instance.current().media_max_bytes, owner=organization_id)
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("mediaAssets:generateUploadUrl")
    storage_id = await upload(owlat, organization_id, png(640, 480))
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await add(editor, storage_id)
    asset_id = await add(owner, storage_id, "Hero.PNG", alt="A hero", tags=["Spring", " sale "])
    asset = await editor.query("mediaAssets:get", {"assetId": asset_id})
    assert (asset["mimeType"], asset["width"], asset["height"]) == ("image/png", 640, 480)
    assert asset["filename"] == "Hero.PNG" and asset["fileSize"] == len(png(640, 480))
    assert asset["url"].endswith(f"/api/storage/{await _key(owlat, storage_id)}")
    assert asset["tags"] == ["spring", "sale"] and asset["uploadedBy"] == owner.user_id
    with pytest.raises(ConvexError, match="^This file is already in the media library$"):
        await add(owner, storage_id)


async def _key(owlat: Application, storage_id: str) -> str:
    async def read(ctx: Any) -> Any:
        return (await ctx.db.system.get(storage_id))["key"]

    return str(await in_query(owlat, read))


async def test_another_organizations_upload_is_refused(owlat: Application) -> None:
    owner, _, _ = await owner_and_editor(owlat)
    stranger = await signed_in(owlat, "b@example.com")
    theirs = await upload(owlat, await with_organization(stranger, "org-b"), png())
    unowned = await store_file(owlat, png(), content_type="image/png")
    for storage_id in (theirs, unowned):
        with pytest.raises(ConvexError, match="^File not found$"):
            await add(owner, storage_id)
    assert (await owner.query("mediaAssets:list", {"paginationOpts": PAGE}))["page"] == []
    await add(stranger, theirs)  # still theirs to use


async def test_only_images_of_the_declared_type_and_name_are_accepted(owlat: Application) -> None:
    owner, _, organization_id = await owner_and_editor(owlat)
    for data, content_type, filename, message in (
        (b"<svg onload=alert(1)>", "image/svg+xml", "x.svg", "is not a PNG, JPEG, GIF or WebP"),
        (b"MZ\x90\x00", "image/png", "x.png", "is not a PNG, JPEG, GIF or WebP"),
        (png(), "text/html", "x.png", "is image/png but was uploaded as text/html"),
        (png(), "image/png", "x.jpg", "its name must end in .png"),
        (png(), "image/png", "shell.php.png", "must not contain the extension .php"),
        (png(), "image/png", "a\nb.png", "without control characters"),
    ):
        storage_id = await upload(owlat, organization_id, data, content_type)
        with pytest.raises(ConvexError, match=message):
            await add(owner, storage_id, filename)
    assert (await owner.query("mediaAssets:list", {"paginationOpts": PAGE}))["page"] == []


async def test_a_file_over_the_media_limit_is_refused(owlat: Application) -> None:
    owner, _, organization_id = await owner_and_editor(owlat)
    storage_id = await upload(owlat, organization_id, png(40, 40))
    instance.configure(instance.current().data_dir, BASE_URL, media_max_bytes=50, **FAST)  # type: ignore[arg-type]
    with pytest.raises(ConvexError, match="^The file is over the media limit of 50 bytes$"):
        await add(owner, storage_id)


async def test_the_library_searches_updates_and_deletes(owlat: Application) -> None:
    owner, editor, organization_id = await owner_and_editor(owlat)
    first = await add(
        owner, await upload(owlat, organization_id, png()), "beach.png", tags=["summer"]
    )
    second = await add(owner, await upload(owlat, organization_id, png()), "snow.png", alt="Ski")
    listed = await editor.query("mediaAssets:list", {"paginationOpts": PAGE})
    assert [a["_id"] for a in listed["page"]] == [second, first]
    for query, expected in (({"search": "SKI"}, [second]), ({"tag": "summer"}, [first])):
        found = await editor.query("mediaAssets:list", {"paginationOpts": PAGE, **query})
        assert [a["_id"] for a in found["page"]] == expected
    with pytest.raises(ConvexError, match="^Admin access required$"):
        await editor.mutation("mediaAssets:update", {"assetId": first, "alt": "x"})
    updated = await owner.mutation(
        "mediaAssets:update", {"assetId": second, "alt": "", "tags": ["winter"]}
    )
    assert "alt" not in updated and updated["tags"] == ["winter"]
    found = await editor.query("mediaAssets:list", {"paginationOpts": PAGE, "search": "winter"})
    assert [a["_id"] for a in found["page"]] == [second]
    storage_id = updated["storageId"]
    await owner.mutation("mediaAssets:remove", {"assetId": second})
    assert await editor.query("mediaAssets:get", {"assetId": second}) is None

    async def file(ctx: Any) -> Any:
        return await ctx.db.system.get(storage_id)

    assert await in_query(owlat, file) is None


async def test_minting_upload_urls_is_limited_per_member(owlat: Application) -> None:
    owner, editor, _ = await owner_and_editor(owlat)
    for _ in range(UPLOAD_URLS):
        await owner.mutation("mediaAssets:generateUploadUrl", {})
    too_many = "^At most 60 upload URLs a minute; try again in [0-9]+ s$"
    for path in (
        "mediaAssets:generateUploadUrl",
        "transactionalEmails:generateAttachmentUploadUrl",
        "contactImports:generateUploadUrl",
    ):
        with pytest.raises(ConvexError, match=too_many):
            await owner.mutation(path, {})
    # another member's quota is their own
    url = await editor.mutation("transactionalEmails:generateAttachmentUploadUrl", {})
    assert url.startswith("http")
