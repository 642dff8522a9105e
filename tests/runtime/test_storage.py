"""`ctx.storage` and `_storage` in process: storing from actions, metadata through
`ctx.db.system`, URLs, and deletes that take effect only when their transaction commits."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from owlat.runtime.app_package import load_app_package
from owlat.runtime.application import Application
from owlat.runtime.database.engines import create_engine
from owlat.runtime.database.transaction import Transaction
from owlat.runtime.errors import (
    ArgumentValidationError,
    ConvexError,
    DocumentNotFoundError,
    InvalidIdError,
    InvalidValueError,
    OperatorError,
    PayloadTooLargeError,
    ReadOnlyError,
)
from owlat.runtime.storage import store_file
from owlat.runtime.storage.blobstores import DigestMismatchError
from owlat.runtime.storage.upload_tokens import UploadGrant
from owlat.runtime.testing import TEST_PUBLIC_URL, in_mutation, in_query
from tests.runtime.conftest import FIXTURE_APP


async def store(app: Application, text: str, content_type: str | None = None) -> str:
    args: dict[str, Any] = {"text": text}
    if content_type is not None:
        args["contentType"] = content_type
    storage_id: str = (await app.run_action("files:storeText", args)).value
    return storage_id


def blob_path(app: Application, document: dict[str, Any], data_dir: Path) -> Path:
    key = document["key"]
    return data_dir / "storage" / key[:2] / key


async def test_store_metadata_url_and_content(app: Application, tmp_path: Path) -> None:
    storage_id = await store(app, "hello", "text/plain")
    metadata = (await app.run_query("files:metadata", {"storageId": storage_id})).value
    assert metadata["_id"] == storage_id
    assert metadata["sha256"] == base64.b64encode(hashlib.sha256(b"hello").digest()).decode()
    assert (metadata["size"], metadata["contentType"]) == (5, "text/plain")
    assert blob_path(app, metadata, tmp_path).read_bytes() == b"hello"
    url = (await app.run_query("files:getUrl", {"storageId": storage_id})).value
    assert url == f"{TEST_PUBLIC_URL}/api/storage/{metadata['key']}"
    assert (await app.run_action("files:readText", {"storageId": storage_id})).value == "hello"
    listed = (await app.run_query("files:allMetadata", {})).value
    assert [document["_id"] for document in listed] == [storage_id]
    untyped = await store(app, "no type")
    assert (
        "contentType" not in (await app.run_query("files:metadata", {"storageId": untyped})).value
    )


async def test_store_from_a_stream_with_a_digest(app: Application) -> None:
    digest = base64.b64encode(hashlib.sha256(b"abcdef").digest()).decode()
    storage_id = (
        await app.run_action("files:storeStream", {"parts": ["abc", "def"], "sha256": digest})
    ).value
    assert (await app.run_action("files:readText", {"storageId": storage_id})).value == "abcdef"
    with pytest.raises(DigestMismatchError, match="nothing was stored"):
        await app.run_action("files:storeStream", {"parts": ["abc", "xyz"], "sha256": digest})
    with pytest.raises(InvalidValueError, match="base64 of a 32-byte digest"):
        await app.run_action("files:storeStream", {"parts": ["abc"], "sha256": "abc"})
    assert len((await app.run_query("files:allMetadata", {})).value) == 1


async def test_a_files_owner_is_recorded(app: Application) -> None:
    owned = (await app.run_action("files:storeText", {"text": "x", "owner": "team-a"})).value
    assert (await app.run_query("files:metadata", {"storageId": owned})).value["owner"] == "team-a"
    anyone = await store(app, "y")
    assert "owner" not in (await app.run_query("files:metadata", {"storageId": anyone})).value


async def test_content_over_the_limit_is_refused_while_it_streams(app: Application) -> None:
    taken: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(100):
            taken.append(index)
            yield b"0123456789"

    limit = UploadGrant(max_bytes=25)
    with pytest.raises(PayloadTooLargeError, match="limit of 25 bytes; nothing was stored"):
        await store_file(app, chunks(), grant=limit)
    assert taken == [0, 1, 2]  # refused at the chunk that passed the limit
    with pytest.raises(PayloadTooLargeError):
        await store_file(app, b"x" * 26, grant=limit)
    assert (await app.run_query("files:allMetadata", {})).value == []
    exact = await store_file(app, b"x" * 25, grant=limit)
    assert (await app.run_query("files:metadata", {"storageId": exact})).value["size"] == 25


async def test_delete_commits_with_its_mutation(app: Application, tmp_path: Path) -> None:
    storage_id = await store(app, "keep me")
    document = (await app.run_query("files:metadata", {"storageId": storage_id})).value
    blob = blob_path(app, document, tmp_path)

    with pytest.raises(ConvexError, match="changed my mind"):
        await app.run_mutation("files:deleteThenFail", {"storageId": storage_id}, internal=True)
    nested = await app.run_mutation("files:deleteInFailedNestedMutation", {"storageId": storage_id})
    assert nested.value == "changed my mind"
    assert blob.exists()
    assert (await app.run_query("files:getUrl", {"storageId": storage_id})).value is not None

    await app.run_mutation("files:delete", {"storageId": storage_id})
    assert not blob.exists()
    assert (await app.run_query("files:getUrl", {"storageId": storage_id})).value is None
    assert (await app.run_action("files:readText", {"storageId": storage_id})).value is None
    with pytest.raises(DocumentNotFoundError, match="there is no stored file with id"):
        await app.run_mutation("files:delete", {"storageId": storage_id})


async def test_actions_get_url_delete_and_upload_urls(app: Application) -> None:
    storage_id = await store(app, "x")
    result = (await app.run_action("files:urlAndDelete", {"storageId": storage_id})).value
    assert result["url"].startswith(f"{TEST_PUBLIC_URL}/api/storage/")
    assert result["after"] is None
    assert result["upload"].startswith(f"{TEST_PUBLIC_URL}/api/storage/upload?token=")


async def test_ids_of_other_tables_are_refused(app: Application) -> None:
    message_id = (await app.run_mutation("messages:send", {"channel": "c", "body": "b"})).value
    with pytest.raises(InvalidIdError, match=r"ctx.storage.delete\(\): .* is not a storage id"):
        await app.run_mutation("files:delete", {"storageId": message_id})
    with pytest.raises(ArgumentValidationError):
        await app.run_query("files:getUrl", {"storageId": message_id})
    storage_id = await store(app, "x")
    saved = (await app.run_mutation("files:save", {"storageId": storage_id, "name": "x"})).value
    assert saved


async def test_each_kind_gets_its_own_storage_methods(app: Application) -> None:
    async def upload_url_from_query(ctx: Any) -> Any:
        return await ctx.storage.generate_upload_url()

    async def store_from_mutation(ctx: Any) -> Any:
        return await ctx.storage.store(b"x")

    with pytest.raises(ReadOnlyError, match="only available in mutations and actions"):
        await in_query(app, upload_url_from_query)
    with pytest.raises(ReadOnlyError, match=r"ctx.storage.store\(\) is only available in actions"):
        await in_mutation(app, store_from_mutation)


async def test_after_commit_callbacks_run_after_the_commit_only(
    app: Application, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    async def body(txn: Transaction) -> None:
        async def note() -> None:
            ran.append("first")

        async def fail() -> None:
            raise RuntimeError("callback broke")

        txn.after_commit(note)
        txn.after_commit(fail)
        assert ran == []

    with caplog.at_level(logging.ERROR, logger="owlat.runtime"):
        await app.run_system_write(body)
    assert ran == ["first"]
    assert "an after-commit callback failed" in caplog.text

    async def rolled_back(txn: Transaction) -> None:
        async def never() -> None:
            ran.append("never")

        txn.after_commit(never)
        raise ValueError("roll back")

    with pytest.raises(ValueError, match="roll back"):
        await app.run_system_write(rolled_back)
    assert ran == ["first"]


async def test_without_file_storage_calls_say_so(tmp_path: Path, database_url: str) -> None:
    engine = create_engine(tmp_path, database_url)
    application = Application(load_app_package(FIXTURE_APP), engine)
    await application.start()
    try:
        with pytest.raises(OperatorError, match="File storage is not configured"):
            await application.run_mutation("files:generateUploadUrl", {})
    finally:
        await application.close()


async def test_actions_read_a_range_of_a_file(app: Application) -> None:
    from owlat.runtime.storage import StorageActions

    storage_id = await store(app, "0123456789")
    storage = StorageActions(app)
    assert await storage.read_range(storage_id, 2, 5) == b"234"
    assert await storage.read_range(storage_id, 8, 100) == b"89"
    await app.run_mutation("files:delete", {"storageId": storage_id})
    assert await storage.read_range(storage_id, 0, 1) is None
