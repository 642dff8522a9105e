"""The blob store interface: where file contents live (their metadata is in `_storage`).

A blob store keeps byte strings under opaque keys. Every store keeps three rules:

* **Streamed, bounded memory.** `put` consumes an async stream of chunks; a store holds at
  most a couple of pieces of it at a time (`Measured` cuts the stream into pieces), and
  `read` yields a byte range as an async stream.
* **Measured on the way.** `put` returns the size and SHA-256 it computed while the bytes
  went by (`Measured`, shared by every store), and given an expected SHA-256 it refuses a
  mismatch with `DigestMismatchError`.
* **All or nothing.** A blob becomes readable only once complete and verified; a put that
  fails, is cancelled or mismatches leaves nothing behind.

`delete` of a missing key is not an error (deletes run after commits and may be repeated).
"""

from __future__ import annotations

import abc
import base64
import dataclasses
import hashlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager

from owlat.runtime.errors import EngineError, UserError

# A chunk size for reads and a piece size for local writes: large enough to amortize a
# thread hop, small enough not to matter in memory.
READ_CHUNK_SIZE = 256 * 1024


class DigestMismatchError(UserError):
    """The uploaded content does not match the SHA-256 digest sent with it."""


class BlobNotFoundError(EngineError):
    """The blob store has no content under this key."""


@dataclasses.dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a store measured while storing a blob."""

    size: int
    sha256: bytes


class Measured:
    """An upload cut into pieces of `piece_size` bytes (the last one may be shorter), with
    its size and SHA-256 computed as the pieces are taken."""

    def __init__(self, chunks: AsyncIterable[bytes], piece_size: int) -> None:
        self._chunks = chunks
        self._piece_size = piece_size
        self._hash = hashlib.sha256()
        self.size = 0

    async def pieces(self) -> AsyncGenerator[bytes, None]:
        buffer = bytearray()
        async for chunk in self._chunks:
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise TypeError(f"file contents must be bytes, got {type(chunk).__name__}")
            self._hash.update(chunk)
            self.size += len(chunk)
            buffer += chunk
            while len(buffer) >= self._piece_size:
                yield bytes(buffer[: self._piece_size])
                del buffer[: self._piece_size]
        if buffer:
            yield bytes(buffer)

    def info(self, expected_sha256: bytes | None) -> BlobInfo:
        """The measurements, once every piece was taken; raises on a digest mismatch."""
        digest = self._hash.digest()
        if expected_sha256 is not None and digest != expected_sha256:
            raise DigestMismatchError(
                "The uploaded content does not match its SHA-256 digest: "
                f"expected {_b64(expected_sha256)}, received {_b64(digest)} "
                f"({self.size} bytes); nothing was stored"
            )
        return BlobInfo(self.size, digest)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class BlobStore(abc.ABC):
    """Where file contents are kept: a local folder, S3-compatible object storage, ..."""

    @abc.abstractmethod
    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, sha256: bytes | None = None
    ) -> BlobInfo:
        """Store the stream under `key` (new); all or nothing (see the module rules)."""

    @abc.abstractmethod
    def read(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """`async with store.read(key, start, end) as chunks:` the bytes `[start, end)`
        (to the end when `end` is None). Entering raises `BlobNotFoundError` for an
        unknown key; leaving releases the underlying file or connection."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the blob under `key`, if there is one."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections; the store is not used afterwards."""
