"""File storage through the real server, on both blob stores (a local folder and S3 on a
real moto_server): upload URLs from a mutation, uploads with and without a Digest, token
checks, whole and ranged downloads, deletes that roll back, and a large streamed upload."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from owlat.runtime.storage import FileStorage, open_file_storage
from owlat.runtime.storage.upload_tokens import UploadTokens
from tests.e2e.conftest import Issuers, RunningServer, start_server
from tests.s3 import MotoServer

MiB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
async def server(
    request: pytest.FixtureRequest, tmp_path: Path, issuers: Issuers
) -> AsyncIterator[RunningServer]:
    storage = None
    if request.param == "s3":
        moto: MotoServer = request.getfixturevalue("moto_server")
        storage = open_file_storage(tmp_path, public_url="", s3=moto.new_bucket())
    async with start_server(tmp_path, issuers, storage) as running:
        yield running


async def call(
    client: httpx.AsyncClient, kind: str, path: str, args: dict[str, Any], admin: str = ""
) -> Any:
    headers = {"Authorization": f"Convex {admin}"} if admin else {}
    reply = await client.post(
        f"/api/{kind}", json={"path": path, "args": args, "format": "json"}, headers=headers
    )
    body = reply.json()
    if body["status"] != "success":
        raise AssertionError(body["errorMessage"])
    return body["value"]


async def upload(client: httpx.AsyncClient, content: Any, **headers: str) -> httpx.Response:
    url = await call(client, "mutation", "files:generateUploadUrl", {})
    return await client.post(url, content=content, headers=headers)


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


async def stored_count(client: httpx.AsyncClient) -> int:
    return len(await call(client, "query", "files:allMetadata", {}))


async def test_upload_then_download_whole_ranged_and_head(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    url = await call(client, "mutation", "files:generateUploadUrl", {})
    assert url.startswith(f"{server.url}/api/storage/upload?token=")
    reply = await client.post(url, content=b"hello world", headers={"Content-Type": "text/plain"})
    assert reply.status_code == 200, reply.text
    storage_id = reply.json()["storageId"]
    again = await client.post(url, content=b"second")  # a URL serves until it expires
    assert again.status_code == 200 and again.json()["storageId"] != storage_id
    await call(client, "mutation", "files:save", {"storageId": storage_id, "name": "hello"})

    file_url = await call(client, "query", "files:getUrl", {"storageId": storage_id})
    assert file_url.startswith(f"{server.url}/api/storage/")
    whole = await client.get(file_url)
    assert whole.status_code == 200 and whole.content == b"hello world"
    assert whole.headers["content-type"] == "text/plain"
    assert whole.headers["content-length"] == "11"
    assert whole.headers["digest"] == f"sha-256={sha256_b64(b'hello world')}"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["cache-control"] == "private, max-age=2592000"

    head = await client.head(file_url)
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "11")
    untyped = await client.get(
        await call(client, "query", "files:getUrl", {"storageId": again.json()["storageId"]})
    )
    assert untyped.headers["content-type"] == "application/octet-stream"

    part = await client.get(file_url, headers={"Range": "bytes=0-4"})
    assert (part.status_code, part.content) == (206, b"hello")
    assert part.headers["content-range"] == "bytes 0-4/11"
    assert part.headers["content-length"] == "5" and "digest" not in part.headers
    suffix = await client.get(file_url, headers={"Range": "bytes=-5"})
    assert (suffix.status_code, suffix.content) == (206, b"world")
    for unsatisfiable in ("bytes=11-", "bytes=0-1,4-5"):
        refused = await client.get(file_url, headers={"Range": unsatisfiable})
        assert refused.status_code == 416
        assert refused.headers["content-range"] == "bytes */11"

    missing = await client.get(f"{server.url}/api/storage/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


async def test_digest_header_is_checked(client: httpx.AsyncClient) -> None:
    good = await upload(client, b"checked", Digest=f"sha-256={sha256_b64(b'checked')}")
    assert good.status_code == 200, good.text
    bad = await upload(client, b"checked", Digest=f"sha-256={sha256_b64(b'other')}")
    assert bad.status_code == 400
    assert "does not match its SHA-256 digest" in bad.json()["message"]
    malformed = await upload(client, b"checked", Digest="sha-256=nope")
    assert malformed.status_code == 400 and "32-byte" in malformed.json()["message"]
    assert await stored_count(client) == 1


async def test_expired_forged_and_missing_tokens_are_refused(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    storage = server.application.storage
    assert isinstance(storage, FileStorage)
    expired = storage.tokens.issue(now=time.time() - 3601)
    forged = UploadTokens(b"not the deployment's key").issue()
    for query, message in (
        (f"?token={expired}", "expired"),
        (f"?token={forged}", "not valid"),
        ("", "has no token"),
    ):
        reply = await client.post(f"/api/storage/upload{query}", content=b"x")
        assert reply.status_code == 401
        assert message in reply.json()["message"]
    assert await stored_count(client) == 0


async def test_a_delete_that_rolls_back_keeps_the_file(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    storage_id = (await upload(client, b"precious")).json()["storageId"]
    file_url = await call(client, "query", "files:getUrl", {"storageId": storage_id})
    with pytest.raises(AssertionError, match="changed my mind"):
        await call(
            client,
            "mutation",
            "files:deleteThenFail",
            {"storageId": storage_id},
            admin=server.admin_key,
        )
    assert (await client.get(file_url)).content == b"precious"

    await call(client, "mutation", "files:delete", {"storageId": storage_id})
    assert (await client.get(file_url)).status_code == 404
    assert await call(client, "query", "files:getUrl", {"storageId": storage_id}) is None


async def test_a_large_upload_is_streamed(
    server: RunningServer, client: httpx.AsyncClient, request: pytest.FixtureRequest
) -> None:
    chunk = bytes(range(256)) * 4096  # 1 MiB
    total = 20
    digest = hashlib.sha256(chunk * total).digest()

    async def written_while_uploading() -> int:
        """How much of the upload the server has already handed to the blob store."""
        if "s3" in request.node.callspec.id:
            moto: MotoServer = request.getfixturevalue("moto_server")
            storage = server.application.storage
            assert storage is not None
            bucket = storage.blobs.settings.bucket  # type: ignore[attr-defined]
            with moto.client() as s3:
                uploads = await asyncio.to_thread(s3.list_multipart_uploads, Bucket=bucket)
                parts = 0
                for entry in uploads.get("Uploads", []):
                    listed = await asyncio.to_thread(
                        s3.list_parts, Bucket=bucket, Key=entry["Key"], UploadId=entry["UploadId"]
                    )
                    parts += sum(part["Size"] for part in listed.get("Parts", []))
                return parts
        partial = server.data_dir / "storage" / ".partial"
        return sum(path.stat().st_size for path in partial.iterdir()) if partial.exists() else 0

    async def body() -> AsyncIterator[bytes]:
        for index in range(total):
            yield chunk
            if index == 17:  # most of it sent: the server must already be writing it out
                deadline = time.monotonic() + 10
                while await written_while_uploading() < 8 * MiB:
                    assert time.monotonic() < deadline, "the upload was not streamed"
                    await asyncio.sleep(0.02)

    url = await call(client, "mutation", "files:generateUploadUrl", {})
    reply = await client.post(url, content=body(), timeout=60)
    assert reply.status_code == 200, reply.text
    file_url = await call(client, "query", "files:getUrl", {"storageId": reply.json()["storageId"]})

    received = hashlib.sha256()
    async with client.stream("GET", file_url, timeout=60) as download:
        assert download.headers["content-length"] == str(total * MiB)
        assert download.headers["digest"] == f"sha-256={base64.b64encode(digest).decode()}"
        async for piece in download.aiter_bytes():
            received.update(piece)
    assert received.digest() == digest


async def test_http_actions_can_store_files(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    reply = await client.post(
        f"{server.site_url}/upload", content=b"from a webhook", headers={"Content-Type": "a/b"}
    )
    assert reply.status_code == 200, reply.text
    download = await client.get(reply.json()["url"])
    assert (download.content, download.headers["content-type"]) == (b"from a webhook", "a/b")


async def test_an_upload_over_its_urls_limit_is_refused_with_413(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """The limit signed into the URL: a Content-Length over it is refused before the body
    is read, a body streaming past it (chunked, no length) as soon as it does; nothing is
    stored either way, and the owner named with the URL is recorded on the file."""
    limit = 3 * MiB
    url = await call(
        client, "mutation", "files:generateUploadUrl", {"maxBytes": limit, "owner": "team-a"}
    )
    exact = await client.post(url, content=b"x" * limit)
    assert exact.status_code == 200, exact.text
    stored = await call(client, "query", "files:metadata", {"storageId": exact.json()["storageId"]})
    assert (stored["size"], stored["owner"]) == (limit, "team-a")

    announced = await client.post(url, content=b"x" * (limit + 1))
    assert announced.status_code == 413
    assert announced.json() == {
        "code": "PayloadTooLarge",
        "message": f"The file is larger than this upload's limit of {limit:,} bytes; "
        "nothing was stored",
    }
    # a chunked body with no length: answered once past the limit, the rest never sent
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        path = url.removeprefix(server.url)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        piece = b"y" * MiB
        for _ in range(4):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413 ")
    assert await stored_count(client) == 1
