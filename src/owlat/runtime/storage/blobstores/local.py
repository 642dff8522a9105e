"""Blobs as files in a local folder (the default: `<data folder>/storage`).

A blob is the file `<root>/<key[:2]>/<key>` (two-character fan-out keeps folders small).
An upload is written to `<root>/.partial/<key>.<random>`, flushed to disk, checked, then
renamed into place: a rename within one filesystem is atomic, so a blob is either absent or
whole. Disk calls run in worker threads so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import BinaryIO

from owlat.runtime.errors import DeveloperError
from owlat.runtime.storage.blobstores.types import (
    READ_CHUNK_SIZE,
    BlobInfo,
    BlobNotFoundError,
    BlobStore,
    Measured,
)

PIECE_SIZE = 1024 * 1024
PARTIAL_FOLDER = ".partial"
_KEY = re.compile(r"[A-Za-z0-9_-]{3,128}")


class LocalBlobStore(BlobStore):
    """Blobs as files under `root` (created on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise DeveloperError(f"Invalid blob key {key!r}")
        return self.root / key[:2] / key

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, sha256: bytes | None = None
    ) -> BlobInfo:
        target = self._path(key)
        partial = self.root / PARTIAL_FOLDER / f"{key}.{secrets.token_hex(4)}"
        await asyncio.to_thread(partial.parent.mkdir, parents=True, exist_ok=True)
        measured = Measured(chunks, PIECE_SIZE)
        try:
            file = await asyncio.to_thread(open, partial, "wb")
            try:
                async with aclosing(measured.pieces()) as pieces:
                    async for piece in pieces:
                        await asyncio.to_thread(file.write, piece)
                await asyncio.to_thread(_flush_to_disk, file)
            finally:
                file.close()
            info = measured.info(sha256)
            await asyncio.to_thread(_move_into_place, partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return info

    @asynccontextmanager
    async def read(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        try:
            file = await asyncio.to_thread(open, self._path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(f"No blob {key!r} in {self.root}") from None
        try:
            if start:
                await asyncio.to_thread(file.seek, start)
            yield _FileChunks(file, sys.maxsize if end is None else end - start)
        finally:
            file.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)


def _flush_to_disk(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())


def _move_into_place(partial: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, target)


class _FileChunks:
    """Up to `remaining` bytes of an open file, as an async stream of chunks."""

    def __init__(self, file: BinaryIO, remaining: int) -> None:
        self._file = file
        self._remaining = remaining

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._remaining <= 0:
            raise StopAsyncIteration
        chunk = await asyncio.to_thread(self._file.read, min(READ_CHUNK_SIZE, self._remaining))
        if not chunk:
            raise StopAsyncIteration
        self._remaining -= len(chunk)
        return chunk
