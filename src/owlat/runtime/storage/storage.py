"""File storage: the `_storage` system table, `ctx.storage`, and storing and reading files.

* A file is a `_storage` document `{sha256, size, contentType?, owner?, key}` plus a blob
  stored under `key` in the deployment's blob store (blobstores/). `sha256` is the base64
  of the content's SHA-256, `size` its length in bytes, `owner` what the function that
  generated its upload URL (or stored it) named as its owner, and `key` a random UUID that
  names the blob and the file's URL, `<public url>/api/storage/<key>`. Apps keep the
  document id (`v.id("_storage")`) and read the metadata with `ctx.db.system.get(id)` or
  `ctx.db.system.query("_storage")`; a function handed a storage id by a caller compares
  the file's `owner` with the caller's (the runtime gives it no meaning).
* **Storing** writes the blob first (streamed, measured and checked while it streams),
  then inserts the document in its own transaction: a file is visible only once its
  content is complete. A crash in between leaves an orphan blob, never a file without
  content.
* **Deleting** removes the document in the caller's transaction and the blob only after
  that transaction commits (`Transaction.after_commit`): a mutation that deletes a file and
  then fails, or a nested mutation that is rolled back, keeps the file.
* **Uploading** goes through an upload URL whose token is signed and valid for an hour
  (`upload_tokens.py`), posted to the client API (`server/storage_api.py`). The function
  generating the URL may sign into it the most bytes an upload may have (`max_bytes`,
  enforced while the body streams: one byte more and nothing is stored, HTTP 413) and the
  file's `owner`.

`ctx.storage` by kind of function: queries `get_url`; mutations also
`generate_upload_url` and `delete`; actions all of those (each call its own transaction)
plus `store` and `get`.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from owlat.runtime.calls import Runtime
from owlat.runtime.database.query import Query
from owlat.runtime.database.transaction import Transaction
from owlat.runtime.errors import (
    DocumentNotFoundError,
    InvalidIdError,
    InvalidValueError,
    OperatorError,
    PayloadTooLargeError,
    ReadOnlyError,
)
from owlat.runtime.storage.file_storage import FileStorage
from owlat.runtime.storage.upload_tokens import UploadGrant
from owlat.runtime.system_tables import FILES_BY_KEY as BY_KEY
from owlat.runtime.system_tables import STORAGE as TABLE
from owlat.runtime.types import Document
from owlat.runtime.values.ids import table_number_of

FileData = bytes | bytearray | memoryview | AsyncIterable[bytes]


def file_storage_of(app: Runtime) -> FileStorage:
    if app.storage is None:
        raise OperatorError(
            "File storage is not configured: create the Application with "
            "storage=open_file_storage(...) (owlat dev/serve and open_test_app do)"
        )
    return app.storage


# -- the table ---------------------------------------------------------------------------------


async def _document(txn: Transaction, op: str, storage_id: object) -> Document | None:
    """The `_storage` document of `storage_id` (a recorded read), or None."""
    table = txn.catalog.table(TABLE)
    if not isinstance(storage_id, str) or table_number_of(storage_id) != table.number:
        raise InvalidIdError(
            f"ctx.storage.{op}(): {storage_id!r} is not a storage id (an id of table "
            f'"{TABLE}", as an upload or ctx.storage.store() returns)'
        )
    return await txn.get(table, storage_id)


async def find_by_key(txn: Transaction, key: str) -> Document | None:
    """The `_storage` document of the blob `key` (what a file URL names), or None."""
    table = txn.catalog.table(TABLE)
    query = Query(txn, table).with_index(BY_KEY, lambda q: q.eq("key", key))
    document: Document | None = await query.first()
    return document


async def store_file(
    app: Runtime,
    data: FileData,
    *,
    content_type: str | None = None,
    sha256: bytes | None = None,
    grant: UploadGrant | None = None,
) -> str:
    """Store `data` (bytes or an async stream of bytes) as a new file; returns its id.
    With `sha256`, content of another digest is refused (`DigestMismatchError`); content
    over the grant's `max_bytes` is refused as it streams (`PayloadTooLargeError`); the
    grant's `owner` is recorded."""
    if content_type is not None and not isinstance(content_type, str):
        raise TypeError(f"content_type must be a string, got {type(content_type).__name__}")
    grant = grant or UploadGrant()
    files = file_storage_of(app)
    key = str(uuid.uuid4())
    info = await files.blobs.put(key, _chunks(data, grant.max_bytes), sha256=sha256)
    fields: Document = {
        "sha256": base64.b64encode(info.sha256).decode(),
        "size": float(info.size),
        "key": key,
    }
    if content_type:
        fields["contentType"] = content_type
    if grant.owner is not None:
        fields["owner"] = grant.owner

    async def insert(txn: Transaction) -> str:
        return await txn.insert(txn.catalog.table(TABLE), fields)

    try:
        return await app.run_system_write(insert)
    except BaseException:
        await files.blobs.delete(key)
        raise


async def _chunks(data: FileData, max_bytes: int | None) -> AsyncIterator[bytes]:
    """`data` as chunks, refused once it passes `max_bytes` (before that chunk is stored)."""
    if isinstance(data, bytes | bytearray | memoryview):
        data = _once(bytes(data))
    elif not isinstance(data, AsyncIterable):
        raise TypeError(
            f"ctx.storage.store() takes bytes or an async iterator of bytes, "
            f"got {type(data).__name__}"
        )
    size = 0
    async for chunk in data:
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise too_large(max_bytes)
        yield chunk


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def too_large(max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The file is larger than this upload's limit of {max_bytes:,} bytes; nothing was stored"
    )


# -- ctx.storage -------------------------------------------------------------------------------

# Which kinds of function may call each ctx.storage method that is not everywhere.
_ONLY_IN = {
    "generate_upload_url": "mutations and actions",
    "delete": "mutations and actions",
    "store": "actions",
    "get": "actions",
}


class StorageReader:
    """`ctx.storage` in queries."""

    __slots__ = ("_app", "_txn")  # one per function call

    def __init__(self, app: Runtime, transaction: Transaction) -> None:
        self._app = app
        self._txn = transaction

    def __getattr__(self, name: str) -> Any:
        if name in _ONLY_IN:
            raise ReadOnlyError(
                f"ctx.storage.{name}() is only available in {_ONLY_IN[name]}, not here"
            )
        raise AttributeError(name)

    async def get_url(self, storage_id: str) -> str | None:
        """The URL the file can be downloaded from, or None if there is no such file."""
        document = await _document(self._txn, "get_url", storage_id)
        if document is None:
            return None
        return file_storage_of(self._app).file_url(document["key"])


class StorageWriter(StorageReader):
    """`ctx.storage` in mutations."""

    __slots__ = ()

    async def generate_upload_url(
        self, *, max_bytes: int | None = None, owner: str | None = None
    ) -> str:
        """A URL to POST a file's bytes to, valid for an hour; the reply is
        `{"storageId": <id>}`. An upload of more than `max_bytes` is refused (HTTP 413,
        nothing stored); `owner` (an Owlat extension) is recorded as the file's `owner`."""
        return file_storage_of(self._app).upload_url(UploadGrant(max_bytes, owner))

    async def delete(self, storage_id: str) -> None:
        """Delete a file: its document now, its content once this transaction commits."""
        files = file_storage_of(self._app)
        document = await _document(self._txn, "delete", storage_id)
        if document is None:
            raise DocumentNotFoundError(
                f'ctx.storage.delete(): there is no stored file with id "{storage_id}" '
                "(it was never stored, or was already deleted)"
            )
        await self._txn.delete(self._txn.catalog.table(TABLE), document)
        key = document["key"]

        async def delete_blob() -> None:
            await files.blobs.delete(key)

        self._txn.after_commit(delete_blob)


class StorageActions:
    """`ctx.storage` in actions: each call runs in its own transaction."""

    def __init__(self, app: Runtime) -> None:
        self._app = app

    async def get_url(self, storage_id: str) -> str | None:
        """The URL the file can be downloaded from, or None if there is no such file."""

        async def body(txn: Transaction) -> str | None:
            return await StorageReader(self._app, txn).get_url(storage_id)

        return await self._app.run_system_read(body)

    async def generate_upload_url(
        self, *, max_bytes: int | None = None, owner: str | None = None
    ) -> str:
        """A URL to POST a file's bytes to, valid for an hour (see the mutations' one)."""
        return file_storage_of(self._app).upload_url(UploadGrant(max_bytes, owner))

    async def delete(self, storage_id: str) -> None:
        """Delete a file (an error if there is none)."""

        async def body(txn: Transaction) -> None:
            await StorageWriter(self._app, txn).delete(storage_id)

        await self._app.run_system_write(body)

    async def store(
        self,
        data: FileData,
        content_type: str | None = None,
        *,
        sha256: str | None = None,
        owner: str | None = None,
    ) -> str:
        """Store bytes, or an async iterator of bytes, as a new file; returns its id.
        `sha256` (base64), if given, must match the content; `owner` is recorded."""
        expected = None if sha256 is None else _digest(sha256)
        return await store_file(
            self._app,
            data,
            content_type=content_type,
            sha256=expected,
            grant=UploadGrant(owner=owner),
        )

    async def get(self, storage_id: str) -> bytes | None:
        """The content of a file, or None if there is no such file."""

        async def body(txn: Transaction) -> Document | None:
            return await _document(txn, "get", storage_id)

        document = await self._app.run_system_read(body)
        if document is None:
            return None
        async with file_storage_of(self._app).blobs.read(document["key"]) as chunks:
            return b"".join([chunk async for chunk in chunks])

    async def read_range(self, storage_id: str, start: int, end: int) -> bytes | None:
        """Bytes `[start, end)` of a file, or None if there is no such file (an Owlat
        extension: a large file is read in parts, never whole)."""

        async def body(txn: Transaction) -> Document | None:
            return await _document(txn, "read_range", storage_id)

        document = await self._app.run_system_read(body)
        if document is None:
            return None
        async with file_storage_of(self._app).blobs.read(document["key"], start, end) as chunks:
            return b"".join([chunk async for chunk in chunks])


def _digest(sha256: str) -> bytes:
    try:
        digest = base64.b64decode(sha256, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise InvalidValueError(
            f"ctx.storage.store(): sha256 must be the base64 of a 32-byte digest, got {sha256!r}"
        )
    return digest
