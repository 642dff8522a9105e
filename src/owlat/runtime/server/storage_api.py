"""File upload and download on the client port (reference §1 and §4.8).

    POST|PUT  /api/storage/upload?token=...   raw bytes → {"storageId": <_storage id>}
    GET|HEAD  /api/storage/{key}              the file (the URL ctx.storage.get_url gives)

Upload: the token must be valid (storage/storage.py, storage/upload_tokens.py; else 401).
The body is streamed to the blob store, never held whole; `Content-Type` is recorded, and
the owner the token names. A token with a size limit refuses a `Content-Length` over it
before reading anything, and a body that streams past it (chunked, or longer than
announced) as soon as it does: 413, nothing stored. An optional `Digest: sha-256=<base64>`
header is checked against what arrived: a mismatch is a 400 and nothing is stored.

Download: `Content-Type`, `Content-Length`, `Accept-Ranges: bytes`,
`Cache-Control: private, max-age=2592000`, and `Digest: sha-256=<base64>` on whole-file
answers. One `Range: bytes=...` range gets a 206 with `Content-Range`; several ranges, or
one that starts past the end, get a 416 with `Content-Range: bytes */<size>`; a malformed
Range header is ignored, as RFC 9110 says. The body is streamed from the blob store; HEAD
answers the same headers without opening the blob. Unknown keys: 404.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from owlat.runtime.application import Application
from owlat.runtime.database.transaction import Transaction
from owlat.runtime.errors import AuthenticationError, OperatorError, PayloadTooLargeError
from owlat.runtime.server.outcome import json_response, protocol_error_response
from owlat.runtime.storage import file_storage_of, find_by_key, store_file, too_large
from owlat.runtime.storage.blobstores import BlobNotFoundError, BlobStore, DigestMismatchError
from owlat.runtime.types import Document

logger = logging.getLogger("owlat.server")

CACHE_CONTROL = "private, max-age=2592000"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)


class RangeNotSatisfiable(Exception):
    """The Range header asks for no byte of the file, or for several ranges."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range `[start, end)` a Range header asks for; None for the whole file
    (no header, another unit, or a malformed header); raises `RangeNotSatisfiable`."""
    if header is None or not header.strip().lower().startswith("bytes="):
        return None
    if "," in header:
        raise RangeNotSatisfiable("several ranges")
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        length = min(int(last), size)
        if length == 0:
            raise RangeNotSatisfiable("an empty suffix")
        return size - length, size
    start = int(first)
    if last != "" and int(last) < start:
        return None  # last before first: malformed
    if start >= size:
        raise RangeNotSatisfiable("starts past the end")
    return start, size if last == "" else min(int(last) + 1, size)


def parse_digest(header: str | None) -> bytes | None:
    """The SHA-256 of a `Digest: sha-256=<base64>` header (other algorithms are ignored)."""
    if header is None:
        return None
    for item in header.split(","):
        algorithm, _, value = item.strip().partition("=")
        if algorithm.strip().lower() != "sha-256":
            continue
        try:
            digest = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != 32:
            raise ValueError(
                "The Digest header's sha-256 value must be the base64 of a 32-byte SHA-256 "
                f"digest, got {value.strip()!r}"
            )
        return digest
    return None


class StorageApi:
    """Upload and download endpoints of one application's file storage."""

    def __init__(self, application: Application) -> None:
        self.application = application

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/storage/upload", self.upload, methods=["POST", "PUT"]),
            Route("/api/storage/{key}", self.download, methods=["GET", "HEAD"]),
        ]

    async def upload(self, request: Request) -> Response:
        try:
            grant = file_storage_of(self.application).tokens.check(
                request.query_params.get("token")
            )
            limit, announced = grant.max_bytes, request.headers.get("content-length", "")
            if limit is not None and announced.isdigit() and int(announced) > limit:
                raise too_large(limit)
            expected = parse_digest(request.headers.get("digest"))
            storage_id = await store_file(
                self.application,
                request.stream(),
                content_type=request.headers.get("content-type") or None,
                sha256=expected,
                grant=grant,
            )
        except (AuthenticationError, PayloadTooLargeError) as error:
            return protocol_error_response(error.code, error.message)
        except (ValueError, DigestMismatchError) as error:
            return protocol_error_response("BadRequest", str(error))
        except OperatorError as error:
            logger.error("file upload failed", exc_info=error)
            return protocol_error_response(error.code, "The file could not be stored")
        except ClientDisconnect:
            logger.info("a client disconnected during a file upload; nothing was stored")
            return Response(status_code=400)
        return json_response({"storageId": storage_id})

    async def download(self, request: Request) -> Response:
        key = request.path_params["key"]
        files = file_storage_of(self.application)

        async def lookup(txn: Transaction) -> Document | None:
            return await find_by_key(txn, key)

        document = await self.application.run_system_read(lookup)
        if document is None:
            return protocol_error_response("NotFound", f"File {key} not found")
        size = int(document["size"])
        headers = {
            "Content-Type": document.get("contentType") or "application/octet-stream",
            "Accept-Ranges": "bytes",
            "Cache-Control": CACHE_CONTROL,
        }
        try:
            byte_range = parse_range(request.headers.get("range"), size)
        except RangeNotSatisfiable:
            headers["Content-Range"] = f"bytes */{size}"
            return Response(status_code=416, headers=headers)
        if byte_range is None:
            start, end, status = 0, size, 200
            headers["Digest"] = f"sha-256={document['sha256']}"
        else:
            (start, end), status = byte_range, 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        return _BlobResponse(files.blobs, key, start, end, status, headers)


class _BlobResponse(Response):
    """Bytes `[start, end)` of a blob, streamed. The blob is opened before the status is
    sent (a blob gone missing is still a 404) and closed however the response ends."""

    def __init__(
        self, blobs: BlobStore, key: str, start: int, end: int, status: int, headers: dict[str, str]
    ) -> None:
        super().__init__(status_code=status, headers=headers)
        self._blobs, self._key, self._start, self._end = blobs, key, start, end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.raw_headers,
        }
        end: Message = {"type": "http.response.body", "body": b"", "more_body": False}
        if scope["method"] == "HEAD" or self._start == self._end:
            await send(start)
            await send(end)
            return
        try:
            async with self._blobs.read(self._key, self._start, self._end) as chunks:
                await send(start)
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send(end)
        except BlobNotFoundError as error:
            logger.error("the content of file %s is missing: %s", self._key, error.message)
            missing = protocol_error_response("NotFound", f"File {self._key} not found")
            await missing(scope, receive, send)
