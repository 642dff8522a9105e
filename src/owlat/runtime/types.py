"""Shared vocabulary of the runtime: values, ids, timestamps. Imports nothing heavy."""

from __future__ import annotations

from typing import Any, Final, NewType, TypeAlias


class Int64(int):
    """A Convex int64 (`v.int64()`, `$integer` on the wire).

    A plain Python `int` means a Convex *number* (float64), as in JavaScript and in the
    official Python client; wrap it in `Int64` to store a 64-bit integer. Arithmetic on an
    `Int64` gives a plain `int`, so re-wrap results that must stay int64 (an `v.int64()`
    validator does that for you).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Int64({int(self)})"


class Undefined:
    """The absence of a value: JavaScript's `undefined`.

    `None` is Convex `null`, a real value that is stored. `UNDEFINED` is needed where a
    missing field must be spelled out: `ctx.db.patch(id, {"field": UNDEFINED})` removes the
    field, and index keys of a missing field sort as `UNDEFINED` (before `null`).
    """

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = Undefined()

# A Convex value as the runtime holds it in Python:
#   None, bool, float (float64), Int64 (int64), str, bytes, list[Value], dict[str, Value].
Value: TypeAlias = Any
Document: TypeAlias = dict[str, Any]
JSONValue: TypeAlias = Any

# Commit timestamps: nanoseconds since the Unix epoch, strictly increasing.
Timestamp = NewType("Timestamp", int)
# A document id string in Convex's v6 format.
DocumentId = NewType("DocumentId", str)
TableNumber = NewType("TableNumber", int)
