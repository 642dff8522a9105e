"""Blobs as objects in S3-compatible object storage (AWS S3, MinIO, R2, ...), via boto3.

A blob is the object `<prefix><key>` of one bucket. boto3 is synchronous, so every call
runs in a worker thread. An upload that fits in one part (`PART_SIZE`) is one PutObject;
a larger one is a multipart upload of `PART_SIZE` parts, holding at most two parts in
memory. The digest is checked before the object is created (PutObject) or completed
(CompleteMultipartUpload): a mismatching or failed upload is aborted, so objects appear
whole or not at all. botocore errors stop here and become `EngineError`s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

from owlat.runtime.errors import EngineError
from owlat.runtime.storage.blobstores.types import (
    READ_CHUNK_SIZE,
    BlobInfo,
    BlobNotFoundError,
    BlobStore,
    Measured,
)

logger = logging.getLogger("owlat.runtime")

# Every part but the last must be at least 5 MiB (S3's minimum).
PART_SIZE = 8 * 1024 * 1024
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclasses.dataclass(frozen=True)
class S3Settings:
    """Where and how to reach the bucket. Empty credentials use boto3's default chain
    (AWS_* environment variables, profiles, instance roles)."""

    bucket: str
    endpoint_url: str = ""  # empty: AWS; e.g. http://127.0.0.1:9000 for MinIO
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    prefix: str = ""  # prepended to every key, e.g. "owlat/"


class S3BlobStore(BlobStore):
    """Blobs in one bucket of S3-compatible object storage."""

    def __init__(self, settings: S3Settings) -> None:
        import boto3
        from botocore.config import Config

        self.settings = settings
        config = Config(
            # Path-style URLs work with every S3-compatible server; checksums only when
            # the API requires them (several S3-compatible servers reject the others).
            s3={"addressing_style": "path"} if settings.endpoint_url else {},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url or None,
            region_name=settings.region or None,
            aws_access_key_id=settings.access_key_id or None,
            aws_secret_access_key=settings.secret_access_key or None,
            config=config,
        )

    def _name(self, key: str) -> str:
        return self.settings.prefix + key

    async def _call(self, operation: str, **params: Any) -> Any:
        """One S3 call in a worker thread; botocore errors become `EngineError`s."""
        from botocore.exceptions import BotoCoreError, ClientError

        method = getattr(self._client, operation)
        try:
            return await asyncio.to_thread(method, Bucket=self.settings.bucket, **params)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_CODES:
                raise BlobNotFoundError(
                    f"No object {params.get('Key')!r} in bucket {self.settings.bucket!r}"
                ) from None
            raise EngineError(f"S3 {operation} failed: {error}") from error
        except BotoCoreError as error:
            raise EngineError(f"S3 {operation} failed: {error}") from error

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, sha256: bytes | None = None
    ) -> BlobInfo:
        name = self._name(key)
        measured = Measured(chunks, PART_SIZE)
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []

        async def upload_part(body: bytes) -> None:
            number = len(parts) + 1
            reply = await self._call(
                "upload_part", Key=name, UploadId=upload_id, PartNumber=number, Body=body
            )
            parts.append({"PartNumber": number, "ETag": reply["ETag"]})

        try:
            pending: bytes | None = None
            async with aclosing(measured.pieces()) as pieces:
                async for piece in pieces:
                    if pending is not None:
                        if upload_id is None:
                            reply = await self._call("create_multipart_upload", Key=name)
                            upload_id = reply["UploadId"]
                        await upload_part(pending)
                    pending = piece
            info = measured.info(sha256)
            if upload_id is None:
                await self._call("put_object", Key=name, Body=pending or b"")
            else:
                await upload_part(pending or b"")
                await self._call(
                    "complete_multipart_upload",
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            if upload_id is not None:
                await self._abort(name, upload_id)
            raise
        return info

    async def _abort(self, name: str, upload_id: str) -> None:
        try:
            await self._call("abort_multipart_upload", Key=name, UploadId=upload_id)
        except Exception:
            logger.warning("could not abort multipart upload of %s", name, exc_info=True)

    @asynccontextmanager
    async def read(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        if end is not None and end <= start:
            yield _Empty()
            return
        params: dict[str, Any] = {"Key": self._name(key)}
        if start or end is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        reply = await self._call("get_object", **params)
        body = reply["Body"]
        try:
            yield _BodyChunks(body)
        finally:
            await asyncio.to_thread(body.close)

    async def delete(self, key: str) -> None:
        await self._call("delete_object", Key=self._name(key))

    async def keys(self) -> list[str]:
        """Every key of the store (the objects under its prefix, the prefix left out)."""
        keys: list[str] = []
        params: dict[str, Any] = {"Prefix": self.settings.prefix}
        while True:
            reply = await self._call("list_objects_v2", **params)
            prefix = len(self.settings.prefix)
            keys.extend(item["Key"][prefix:] for item in reply.get("Contents", []))
            if not reply.get("IsTruncated"):
                return keys
            params["ContinuationToken"] = reply["NextContinuationToken"]

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


class _BodyChunks:
    """An S3 response body as an async stream of chunks."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def __aiter__(self) -> _BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk: bytes = await asyncio.to_thread(self._body.read, READ_CHUNK_SIZE)
        if not chunk:
            raise StopAsyncIteration
        return chunk


class _Empty:
    def __aiter__(self) -> _Empty:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration
