"""One suite for every blob store: a local folder and S3 (a real moto_server)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from owlat.runtime.errors import DeveloperError
from owlat.runtime.storage.blobstores import (
    BlobNotFoundError,
    BlobStore,
    DigestMismatchError,
    LocalBlobStore,
    create_blob_store,
)
from owlat.runtime.storage.blobstores import s3 as s3_module
from owlat.runtime.storage.blobstores.s3 import S3BlobStore
from tests.s3 import MotoServer


@pytest.fixture(params=["local", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, BlobStore]]:
    if request.param == "local":
        blobs = create_blob_store(tmp_path)
    else:
        moto: MotoServer = request.getfixturevalue("moto_server")
        blobs = create_blob_store(tmp_path, moto.new_bucket(prefix="blobs/"))
    try:
        yield request.param, blobs
    finally:
        await blobs.close()


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read(blobs: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    async with blobs.read(key, start, end) as chunks:
        return b"".join([chunk async for chunk in chunks])


async def test_put_measures_and_read_returns_ranges(store: tuple[str, BlobStore]) -> None:
    _, blobs = store
    info = await blobs.put("key-1", stream(b"hello ", b"", b"world"))
    assert (info.size, info.sha256) == (11, hashlib.sha256(b"hello world").digest())
    assert await read(blobs, "key-1") == b"hello world"
    assert await read(blobs, "key-1", 6) == b"world"
    assert await read(blobs, "key-1", 2, 5) == b"llo"
    assert await read(blobs, "key-1", 4, 4) == b""
    empty = await blobs.put("key-empty", stream())
    assert (empty.size, await read(blobs, "key-empty")) == (0, b"")


async def test_a_digest_mismatch_stores_nothing(store: tuple[str, BlobStore]) -> None:
    _, blobs = store
    with pytest.raises(DigestMismatchError, match="does not match its SHA-256 digest"):
        await blobs.put("key-2", stream(b"abc"), sha256=hashlib.sha256(b"abd").digest())
    with pytest.raises(BlobNotFoundError):
        await read(blobs, "key-2")
    ok = await blobs.put("key-2", stream(b"abc"), sha256=hashlib.sha256(b"abc").digest())
    assert ok.size == 3


async def test_a_failing_stream_stores_nothing(
    store: tuple[str, BlobStore], request: pytest.FixtureRequest
) -> None:
    _, blobs = store

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (9 * 1024 * 1024)  # more than one S3 part: a multipart upload began
        yield b"y"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await blobs.put("key-3", broken())
    with pytest.raises(BlobNotFoundError):
        await read(blobs, "key-3")
    if isinstance(blobs, S3BlobStore):  # the multipart upload was aborted
        moto: MotoServer = request.getfixturevalue("moto_server")
        with moto.client() as client:
            uploads = client.list_multipart_uploads(Bucket=blobs.settings.bucket)
        assert uploads.get("Uploads", []) == []


async def test_delete_is_idempotent(store: tuple[str, BlobStore]) -> None:
    _, blobs = store
    await blobs.put("key-4", stream(b"data"))
    await blobs.delete("key-4")
    await blobs.delete("key-4")
    with pytest.raises(BlobNotFoundError):
        await read(blobs, "key-4")


async def test_multipart_uploads_keep_every_byte(
    store: tuple[str, BlobStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, blobs = store
    monkeypatch.setattr(s3_module, "PART_SIZE", 5 * 1024 * 1024)  # S3's minimum part size
    parts = [bytes([n]) * (1024 * 1024 + n) for n in range(12)]  # ~12 MiB: 3 parts
    data = b"".join(parts)
    info = await blobs.put("key-5", stream(*parts), sha256=hashlib.sha256(data).digest())
    assert info.size == len(data)
    assert await read(blobs, "key-5") == data
    assert (
        await read(blobs, "key-5", 5 * 1024 * 1024 - 3, 5 * 1024 * 1024 + 3)
        == data[5 * 1024 * 1024 - 3 : 5 * 1024 * 1024 + 3]
    )


async def test_local_store_layout_and_key_check(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    await blobs.put("abcdef", stream(b"1"))
    assert (tmp_path / "ab" / "abcdef").read_bytes() == b"1"
    assert list((tmp_path / ".partial").iterdir()) == []
    with pytest.raises(DeveloperError, match="Invalid blob key"):
        await blobs.delete("../etc")
