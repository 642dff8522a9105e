"""One-dimensional arrays as binary query parameters, dumped without psycopg's list
handling (which inspects every list's elements on every call to pick a dumper: most of the
client CPU of a prepared statement with a few array parameters).

Wrap a list in `TextArray`, `IntegerArray`, `BigintArray` or `ByteaArray` (no NULLs) on a
connection set up with `register_arrays`; it goes to the server as text[], integer[],
bigint[] or bytea[] in PostgreSQL's binary array format.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

import psycopg
from psycopg.adapt import Buffer, Dumper
from psycopg.pq import Format

_HEADER = struct.Struct("!iiIii")  # dimensions, has NULLs, element oid, length, lower bound
_LENGTH = struct.Struct("!i")
_INT4 = struct.Struct("!i")
_INT8 = struct.Struct("!q")


class TextArray(list[str]):
    """A text[] parameter."""


class IntegerArray(list[int]):
    """An integer[] (int4) parameter."""


class BigintArray(list[int]):
    """A bigint[] (int8) parameter."""


class ByteaArray(list[bytes]):
    """A bytea[] parameter."""


class _ArrayDumper(Dumper):
    format = Format.BINARY
    element_oid: ClassVar[int]

    def encode(self, item: Any) -> bytes:
        """One element in PostgreSQL's binary format."""
        raise NotImplementedError

    def dump(self, obj: Any) -> Buffer:
        parts = [_HEADER.pack(1, 0, self.element_oid, len(obj), 1)]
        for item in obj:
            data = self.encode(item)
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)


class _TextArrayDumper(_ArrayDumper):
    oid, element_oid = 1009, 25
    def encode(self, item: Any) -> bytes:
        return bytes(item, "utf-8")


class _IntegerArrayDumper(_ArrayDumper):
    oid, element_oid = 1007, 23
    def encode(self, item: Any) -> bytes:
        return _INT4.pack(item)


class _BigintArrayDumper(_ArrayDumper):
    oid, element_oid = 1016, 20
    def encode(self, item: Any) -> bytes:
        return _INT8.pack(item)


class _ByteaArrayDumper(_ArrayDumper):
    oid, element_oid = 1001, 17
    def encode(self, item: Any) -> bytes:
        return bytes(item)


def register_arrays(connection: psycopg.AsyncConnection[Any]) -> None:
    """Let `connection` send the array types of this module."""
    for kind, dumper in (
        (TextArray, _TextArrayDumper),
        (IntegerArray, _IntegerArrayDumper),
        (BigintArray, _BigintArrayDumper),
        (ByteaArray, _ByteaArrayDumper),
    ):
        connection.adapters.register_dumper(kind, dumper)
