"""Validators (`v.string()`, `v.object({...})`, ...): check Python input against a shape.

Import them from `owlat.runtime.values`, which re-exports this module.

`validator.validate(value)` returns the canonical value, as `normalize_value` would build it
(`v.number()` turns an exact int into a float, `v.int64()` an int into `Int64`, `v.object`
drops absent optional fields), or raises `ValidationError`. Internally each validator's
`_check` raises a `Fault`; containers add their path segment while it unwinds, and
`validate()` renders it once. Mismatch faults keep the value and the validator and only format
them when rendered, so a union that tries several members pays little for the failures.

The messages mirror Convex's (`crates/common/src/schemas/validator.rs`), with the path of the
offending value on a `Path:` line (`.` for the root):

    Value does not match validator.
    Path: .email
    Value: 12.0
    Validator: v.string()

Values are shown the way Convex shows them (`null`, `true`, `12.0`, `12n` for an int64,
`"text"`, `{a: 1.0}`), cut to about 100 characters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Mapping
from typing import Any, ClassVar, Final, TypeAlias

from owlat.runtime.errors import DeveloperError, ValidationError
from owlat.runtime.types import UNDEFINED, Int64, Value
from owlat.runtime.values.json import convex_to_json, dumps
from owlat.runtime.values.model import (
    MAX_ARRAY_LENGTH,
    MAX_FIELD_NAME_LENGTH,
    MAX_NESTING,
    MAX_OBJECT_FIELDS,
    Fault,
    check_int64,
    check_unicode,
    checked_key,
    int_text,
    int_to_float,
    normalize_at,
    quote,
    short,
)

IdResolver: TypeAlias = Callable[[str], "str | None"]
"""Given an id string, the name of the table it belongs to, or None if it is not a valid id."""

_SHOW_LIMIT: Final = 100
# The exact Python types of canonical values. A validator reports which of them it may
# accept (`_types`); a union tries a value of one of these types only on those members.
_KINDS: Final[frozenset[type]] = frozenset(
    {str, float, int, bool, type(None), Int64, bytes, list, dict}
)


# --- faults with Convex-shaped messages -----------------------------------------------------


class _Mismatch(Fault):
    def __init__(self, value: object, validator: Validator) -> None:
        super().__init__()
        self.value = value
        self.validator = validator

    def render(self, path: str) -> str:
        return (
            f"Value does not match validator.\nPath: {path or '.'}\n"
            f"Value: {_show(self.value)}\nValidator: {self.validator.describe()}"
        )


class _LiteralMismatch(_Mismatch):
    def render(self, path: str) -> str:
        return (
            f"`{_show(self.value)}` does not match literal validator "
            f"`{self.validator.describe()}`.\nPath: {path or '.'}"
        )


class _FieldFault(Fault):
    def __init__(
        self, obj: Mapping[Any, Any], field: str, validator: ObjectValidator, *, missing: bool
    ) -> None:
        super().__init__()
        self.obj = obj
        self.field = field
        self.validator = validator
        self.missing = missing

    def render(self, path: str) -> str:
        if self.missing:
            headline = (
                f"Object is missing the required field `{self.field}`. Consider wrapping the "
                "field validator in `v.optional(...)` if this is expected."
            )
        else:
            headline = f"Object contains extra field `{self.field}` that is not in the validator."
        return (
            f"{headline}\nPath: {path or '.'}\n"
            f"Object: {_show(self.obj)}\nValidator: {self.validator.describe()}"
        )


class _WrongTable(Fault):
    def __init__(self, id_: str, found: str, table: str) -> None:
        super().__init__()
        self.id, self.found, self.table = id_, found, table

    def render(self, path: str) -> str:
        return (
            f'Found ID "{self.id}" from table `{self.found}`, which does not match the table '
            f'name in validator `v.id("{self.table}")`.\nPath: {path or "."}'
        )


class _BadRecordKey(Fault):
    def __init__(self, key: str, validator: Validator) -> None:
        super().__init__()
        self.key = key
        self.validator = validator

    def render(self, path: str) -> str:
        return (
            f"Record key {quote(short(self.key))} does not match the key validator.\n"
            f"Path: {path or '.'}\nValidator: {self.validator.describe()}"
        )


def _show(value: object) -> str:
    """A value as Convex displays it, cut to about 100 characters."""
    return short(_display(value, _SHOW_LIMIT), _SHOW_LIMIT)


def _display(value: object, budget: int) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, Int64):
        return f"{int(value)}n"
    if isinstance(value, int):  # a number: shown as the float it stands for, when it is one
        try:
            number = float(value)
        except OverflowError:
            return int_text(value, budget + 1)
        return repr(number) if number == value else str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(float(value))
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return quote(value[: budget + 1])
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if value is UNDEFINED:
        return "undefined"
    if isinstance(value, dict):
        pairs = ((f"{key}: ", item) for key, item in value.items())
        return "{" + _display_items(pairs, budget) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + _display_items((("", item) for item in value), budget) + "]"
    return short(repr(value), budget + 1)


def _display_items(items: Any, budget: int) -> str:
    parts: list[str] = []
    used = 0
    for label, item in items:
        if used > budget:
            parts.append("...")
            break
        part = label + _display(item, budget - used)
        parts.append(part)
        used += len(part) + 2
    return ", ".join(parts)


def _check_string(value: object, validator: Validator) -> str:
    if type(value) is str:
        if not value.isascii():
            check_unicode(value)
        return value
    if isinstance(value, str):
        return _check_string(str.__str__(value), validator)
    raise _Mismatch(value, validator)


# --- validators ----------------------------------------------------------------------------


class Validator:
    """A check of a value's shape; build one with `v.*`.

    `validate(value, path, ids)` returns the canonical value or raises `ValidationError`.
    `ids` resolves an id string to its table name (None: not an id); without it `v.id(...)`
    accepts any string. `describe()` gives source-like text, `to_json()` Convex's validator
    JSON. `is_optional` is true only for `v.optional(...)`, which makes an object field (or a
    function argument) optional.
    """

    __slots__ = ()
    is_optional: ClassVar[bool] = False

    def validate(self, value: object, path: str = "", ids: IdResolver | None = None) -> Value:
        try:
            return self._check(value, ids, 0)
        except Fault as fault:
            raise ValidationError(fault.render(fault.path(path))) from None

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        raise NotImplementedError

    def _types(self) -> frozenset[type]:
        """The types in `_KINDS` whose values this validator may accept; it refuses every
        value of the others (by default: it may accept any)."""
        return _KINDS

    def max_depth(self) -> int | None:
        """The deepest nesting of containers a value it accepts can have (`[[1.0]]`: 2);
        None when only the value model's limit bounds it (`v.any()`)."""
        return None

    def describe(self) -> str:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.describe()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Validator):
            return NotImplemented
        return self.is_optional == other.is_optional and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash((self.is_optional, dumps(self.to_json(), sort_keys=True)))


class StringValidator(Validator):
    __slots__ = ()

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        if type(value) is str and value.isascii():
            return value
        return _check_string(value, self)

    def _types(self) -> frozenset[type]:
        return _STR_TYPES

    def max_depth(self) -> int | None:
        return 0

    def describe(self) -> str:
        return "v.string()"

    def to_json(self) -> dict[str, Any]:
        return {"type": "string"}


class FloatValidator(Validator):
    """`v.number()` / `v.float64()`: a float, or an int that a float represents exactly."""

    __slots__ = ("_name",)

    def __init__(self, name: str = "number") -> None:
        self._name = name

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        t = type(value)
        if t is float:
            return value
        if t is int:
            return int_to_float(value)
        if isinstance(value, float):
            return float(value)
        if isinstance(value, int) and not isinstance(value, (bool, Int64)):
            return int_to_float(int(value))
        raise _Mismatch(value, self)

    def _types(self) -> frozenset[type]:
        return _NUMBER_TYPES

    def max_depth(self) -> int | None:
        return 0

    def describe(self) -> str:
        return f"v.{self._name}()"

    def to_json(self) -> dict[str, Any]:
        return {"type": "number"}


class Int64Validator(Validator):
    """`v.int64()`: an `Int64`, or a plain int in range (made an `Int64`)."""

    __slots__ = ()

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        if isinstance(value, int) and value is not True and value is not False:
            check_int64(value)
            return value if type(value) is Int64 else Int64(value)
        raise _Mismatch(value, self)

    def _types(self) -> frozenset[type]:
        return _INT64_TYPES

    def max_depth(self) -> int | None:
        return 0

    def describe(self) -> str:
        return "v.int64()"

    def to_json(self) -> dict[str, Any]:
        return {"type": "bigint"}


class BooleanValidator(Validator):
    __slots__ = ()

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        if value is True or value is False:
            return value
        raise _Mismatch(value, self)

    def _types(self) -> frozenset[type]:
        return _BOOL_TYPES

    def max_depth(self) -> int | None:
        return 0

    def describe(self) -> str:
        return "v.boolean()"

    def to_json(self) -> dict[str, Any]:
        return {"type": "boolean"}


class NullValidator(Validator):
    __slots__ = ()

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        if value is None:
            return None
        raise _Mismatch(value, self)

    def _types(self) -> frozenset[type]:
        return _NULL_TYPES

    def max_depth(self) -> int | None:
        return 0

    def describe(self) -> str:
        return "v.null()"

    def to_json(self) -> dict[str, Any]:
        return {"type": "null"}


class BytesValidator(Validator):
    __slots__ = ()

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        if type(value) is bytes:
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        raise _Mismatch(value, self)

    def _types(self) -> frozenset[type]:
        return _BYTES_TYPES

    def max_depth(self) -> int | None:
        return 0

    def describe(self) -> str:
        return "v.bytes()"

    def to_json(self) -> dict[str, Any]:
        return {"type": "bytes"}


class IdValidator(Validator):
    """`v.id(table)`: a string; with an id resolver, an id of that table."""

    __slots__ = ("table",)

    def __init__(self, table: str) -> None:
        if not isinstance(table, str) or not table:
            raise DeveloperError(f"v.id() needs a table name, not {table!r}")
        self.table = table

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        # an id is ASCII: `_check_string` only for anything else
        text = value if type(value) is str and value.isascii() else _check_string(value, self)
        if ids is not None:
            found = ids(text)
            if found is None:
                raise _Mismatch(value, self)
            if found != self.table:
                raise _WrongTable(text, found, self.table)
        return text

    def _types(self) -> frozenset[type]:
        return _STR_TYPES

    def max_depth(self) -> int | None:
        return 0

    def describe(self) -> str:
        return f'v.id("{self.table}")'

    def to_json(self) -> dict[str, Any]:
        return {"type": "id", "tableName": self.table}


class LiteralValidator(Validator):
    """`v.literal(x)`: exactly `x`, of the same Convex type (`True` is not `1`)."""

    __slots__ = ("value",)

    def __init__(self, value: str | float | bool | Int64) -> None:
        if not isinstance(value, (str, float, int)):  # bool and Int64 are ints
            raise DeveloperError(
                f"v.literal() takes a str, float, int, bool or Int64, not {type(value).__name__}"
            )
        # Canonical, like a value: an int literal is a number (float), Int64 stays int64.
        self.value: str | float | bool | Int64 = _definition(_normalize_root, value)

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        literal = self.value
        kind = type(literal)
        if kind is str:
            if isinstance(value, str) and value == literal:
                return literal
        elif kind is bool:
            if value is literal:
                return literal
        elif kind is float:
            if isinstance(value, (float, int)) and not isinstance(value, (bool, Int64)):
                if value == literal:
                    if literal != 0.0 or math.copysign(1.0, value) == math.copysign(1.0, literal):
                        return literal
                elif literal != literal and value != value:
                    return literal
        elif isinstance(value, int) and not isinstance(value, bool) and value == literal:
            return literal
        raise _LiteralMismatch(value, self)

    def _types(self) -> frozenset[type]:
        kind = type(self.value)
        if kind is str:
            return _STR_TYPES
        if kind is bool:
            return _BOOL_TYPES
        return _NUMBER_TYPES if kind is float else _INT64_TYPES

    def max_depth(self) -> int | None:
        return 0

    def describe(self) -> str:
        return f"v.literal({_display(self.value, _SHOW_LIMIT)})"

    def to_json(self) -> dict[str, Any]:
        return {"type": "literal", "value": convex_to_json(self.value)}


class OptionalValidator(Validator):
    """`v.optional(inner)`: the field may be absent (or `UNDEFINED`); `None` is not absent."""

    __slots__ = ("inner",)
    is_optional: ClassVar[bool] = True

    def __init__(self, inner: Validator) -> None:
        self.inner = inner

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        if value is UNDEFINED:
            return UNDEFINED
        return self.inner._check(value, ids, depth)

    def _types(self) -> frozenset[type]:
        return self.inner._types()

    def max_depth(self) -> int | None:
        return self.inner.max_depth()

    def describe(self) -> str:
        return f"v.optional({self.inner.describe()})"

    def to_json(self) -> dict[str, Any]:
        return self.inner.to_json()


class ArrayValidator(Validator):
    __slots__ = ("item",)

    def __init__(self, item: Validator) -> None:
        self.item = _required(item, "v.array()")

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(value, self)
        if depth >= MAX_NESTING:
            raise Fault(f"value is nested more than {MAX_NESTING} levels deep")
        if len(value) > MAX_ARRAY_LENGTH:
            raise Fault(
                f"array has {len(value)} elements, more than the maximum of {MAX_ARRAY_LENGTH}"
            )
        check = self.item._check
        depth += 1
        out: list[Value] = []
        append = out.append
        for index, item in enumerate(value):
            try:
                append(check(item, ids, depth))
            except Fault as fault:
                fault.segments.append(f"[{index}]")
                raise
        return out

    def _types(self) -> frozenset[type]:
        return _LIST_TYPES

    def max_depth(self) -> int | None:
        return _deeper(self.item.max_depth())

    def describe(self) -> str:
        return f"v.array({self.item.describe()})"

    def to_json(self) -> dict[str, Any]:
        return {"type": "array", "value": self.item.to_json()}


class ObjectValidator(Validator):
    """`v.object({...})`: exactly these fields; `v.optional` ones may be absent."""

    __slots__ = ("_plan", "fields")

    def __init__(self, fields: Mapping[str, Validator]) -> None:
        self.fields: dict[str, Validator] = {}
        for name, validator in fields.items():
            if not isinstance(validator, Validator):
                raise DeveloperError(
                    f"v.object() field {name!r} needs a validator, not {type(validator).__name__}"
                )
            self.fields[_definition(checked_key, name)] = validator
        # (name, validator of a present value, optional, the type its check returns as is
        # when the value is exactly of it: `v.string()` ASCII str, float, bool, None; or
        # `_NO_SHORTCUT`) in declaration order
        self._plan: tuple[tuple[str, Validator, bool, type], ...] = tuple(
            (name, present, val.is_optional, _shortcut(present))
            for name, val in self.fields.items()
            for present in [val.inner if isinstance(val, OptionalValidator) else val]
        )

    def validate_patched(
        self, value: dict[str, Any], patched: Container[str], ids: IdResolver | None = None
    ) -> dict[str, Value]:
        """`validate(value)` for an object in which only the fields named in `patched` may
        have changed since it passed this validator: the others are kept as they are,
        unchecked. Same result (fields in declaration order) and same errors as `validate`,
        provided the unchanged fields still hold the values `validate` returned for them."""
        try:
            checked: dict[str, Value] = self._check(value, ids, 0, patched)
        except Fault as fault:
            raise ValidationError(fault.render(fault.path(""))) from None
        return checked

    def _check(
        self,
        value: Any,
        ids: IdResolver | None,
        depth: int,
        patched: Container[str] | None = None,
    ) -> Value:
        if not isinstance(value, dict):
            raise _Mismatch(value, self)
        if depth >= MAX_NESTING:
            raise Fault(f"value is nested more than {MAX_NESTING} levels deep")
        depth += 1
        out: dict[str, Value] = {}
        present = 0
        item: Any
        for name, validator, optional, shortcut in self._plan:
            item = value.get(name, UNDEFINED)
            if item is UNDEFINED:
                if optional:
                    continue
                raise _FieldFault(value, name, self, missing=True)
            present += 1
            kind = type(item)
            if kind is shortcut and (kind is not str or item.isascii()):
                out[name] = item
                continue
            if patched is not None and name not in patched:  # validated when written
                out[name] = item
                continue
            try:
                out[name] = validator._check(item, ids, depth)
            except Fault as fault:
                fault.segments.append("." + name)
                raise
        if present != len(value):  # extra fields, or fields set to UNDEFINED (absent)
            for key, item in value.items():
                if item is not UNDEFINED and key not in self.fields:
                    field = key if isinstance(key, str) else repr(key)
                    raise _FieldFault(value, field, self, missing=False)
        return out

    def _types(self) -> frozenset[type]:
        return _DICT_TYPES

    def max_depth(self) -> int | None:
        depths = [val.max_depth() for val in self.fields.values()]
        return _deeper(_deepest(depths))

    def describe(self) -> str:
        inner = ", ".join(f"{name}: {val.describe()}" for name, val in self.fields.items())
        return f"v.object({{{inner}}})"

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "object",
            "value": {
                name: {"fieldType": val.to_json(), "optional": val.is_optional}
                for name, val in self.fields.items()
            },
        }


class RecordValidator(Validator):
    """`v.record(keys, values)`: an object with any valid field names that `keys` accepts."""

    __slots__ = ("_any_string_key", "keys", "values")

    def __init__(self, keys: Validator, values: Validator) -> None:
        if not _is_key_validator(keys):
            raise DeveloperError(
                "v.record() keys must be v.string(), v.id(...), a string v.literal(...) or a "
                f"union of those, not {keys.describe()}"
            )
        self.keys = keys
        self.values = _required(values, "v.record()")
        self._any_string_key = type(keys) is StringValidator

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        if not isinstance(value, dict):
            raise _Mismatch(value, self)
        if depth >= MAX_NESTING:
            raise Fault(f"value is nested more than {MAX_NESTING} levels deep")
        depth += 1
        check_key = None if self._any_string_key else self.keys._check
        check_value = self.values._check
        out: dict[str, Value] = {}
        for key, item in value.items():
            if item is UNDEFINED:
                continue
            if not (
                type(key) is str
                and key.isascii()
                and key.isprintable()
                and not key.startswith("$")
                and len(key) <= MAX_FIELD_NAME_LENGTH
            ):
                key = checked_key(key)
            if check_key is not None:  # (a valid field name is a valid `v.string()`)
                try:
                    key = check_key(key, ids, depth)
                except Fault:
                    raise _BadRecordKey(key, self.keys) from None
            try:
                out[key] = check_value(item, ids, depth)
            except Fault as fault:
                fault.segments.append("." + key)
                raise
        if len(out) > MAX_OBJECT_FIELDS:
            raise Fault(
                f"object has {len(out)} fields, more than the maximum of {MAX_OBJECT_FIELDS}"
            )
        return out

    def _types(self) -> frozenset[type]:
        return _DICT_TYPES

    def max_depth(self) -> int | None:
        return _deeper(self.values.max_depth())

    def describe(self) -> str:
        return f"v.record({self.keys.describe()}, {self.values.describe()})"

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "record",
            "keys": self.keys.to_json(),
            "values": {"fieldType": self.values.to_json(), "optional": False},
        }


class UnionValidator(Validator):
    """`v.union(a, b, ...)`: the first member that accepts the value wins."""

    __slots__ = ("_candidates", "_strings", "members")

    def __init__(self, *members: Validator) -> None:
        self.members = tuple(_required(member, "v.union()") for member in members)
        # A union of string literals (a status field, say) is checked with one set lookup.
        strings = [
            m.value
            for m in self.members
            if isinstance(m, LiteralValidator) and isinstance(m.value, str)
        ]
        self._strings: frozenset[str] | None = (
            frozenset(strings) if strings and len(strings) == len(self.members) else None
        )
        # per type in _KINDS: the members that may accept a value of it, in order (the
        # others would refuse it, so trying only these picks the same member)
        self._candidates: dict[type, tuple[Validator, ...]] = {
            kind: tuple(member for member in self.members if kind in member._types())
            for kind in _KINDS
        }

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        strings = self._strings
        if strings is not None:
            if isinstance(value, str) and value in strings:
                return str.__str__(value)
            raise _Mismatch(value, self)
        if len(self.members) == 1:
            return self.members[0]._check(value, ids, depth)
        for member in self._candidates.get(type(value), self.members):
            try:
                return member._check(value, ids, depth)
            except Fault:
                pass
        raise _Mismatch(value, self)

    def _types(self) -> frozenset[type]:
        return frozenset().union(*(member._types() for member in self.members))

    def max_depth(self) -> int | None:
        return _deepest([member.max_depth() for member in self.members])

    def describe(self) -> str:
        return f"v.union({', '.join(member.describe() for member in self.members)})"

    def to_json(self) -> dict[str, Any]:
        return {"type": "union", "value": [member.to_json() for member in self.members]}


class AnyValidator(Validator):
    """`v.any()`: any Convex value (checked and normalized like `normalize_value`)."""

    __slots__ = ()

    def _check(self, value: Any, ids: IdResolver | None, depth: int) -> Value:
        return normalize_at(value, depth)

    def describe(self) -> str:
        return "v.any()"

    def to_json(self) -> dict[str, Any]:
        return {"type": "any"}


_STR_TYPES: Final = frozenset({str})
_NUMBER_TYPES: Final = frozenset({float, int})
_INT64_TYPES: Final = frozenset({int, Int64})
_BOOL_TYPES: Final = frozenset({bool})
_NULL_TYPES: Final = frozenset({type(None)})
_BYTES_TYPES: Final = frozenset({bytes})
_LIST_TYPES: Final = frozenset({list})
_DICT_TYPES: Final = frozenset({dict})


class _NoShortcut:
    """The type of no value: an object field whose check has no shortcut."""


_NO_SHORTCUT: Final = _NoShortcut


def _shortcut(validator: Validator) -> type:
    """The type whose values `validator` returns unchanged without a fault (str: when ASCII;
    see ObjectValidator._check), or `_NO_SHORTCUT`."""
    kind = type(validator)
    if kind is StringValidator:
        return str
    if kind is FloatValidator:
        return float
    if kind is BooleanValidator:
        return bool
    if kind is NullValidator:
        return type(None)
    return _NO_SHORTCUT


def _deeper(depth: int | None) -> int | None:
    return None if depth is None else depth + 1


def _deepest(depths: list[int | None]) -> int | None:
    """The largest of `depths` (0 if none), None if any is None (unbounded)."""
    bounded = [depth for depth in depths if depth is not None]
    return None if len(bounded) < len(depths) else max(bounded, default=0)


def _required(validator: Validator, where: str) -> Validator:
    if not isinstance(validator, Validator):
        raise DeveloperError(f"{where} needs validators, not {type(validator).__name__}")
    if validator.is_optional:
        raise DeveloperError(
            f"{where} cannot contain {validator.describe()}: v.optional() is only allowed as "
            "an object field (or a function argument)"
        )
    return validator


def _is_key_validator(validator: Validator) -> bool:
    if isinstance(validator, (StringValidator, IdValidator)):
        return True
    if isinstance(validator, LiteralValidator):
        return isinstance(validator.value, str)
    if isinstance(validator, UnionValidator):
        return all(_is_key_validator(member) for member in validator.members)
    return False


def _normalize_root(value: object) -> Value:
    return normalize_at(value, 0)


def _definition(check: Callable[[Any], Any], value: object) -> Any:
    """Run a value check on part of a validator's definition; a problem is the developer's."""
    try:
        return check(value)
    except Fault as fault:
        raise DeveloperError(f"Invalid validator definition: {fault.message}") from None


class _ValidatorBuilder:
    """The `v` namespace: validator constructors named as in Convex."""

    __slots__ = ()

    def string(self) -> StringValidator:
        return _STRING

    def number(self) -> FloatValidator:
        return _NUMBER

    def float64(self) -> FloatValidator:
        return _FLOAT64

    def int64(self) -> Int64Validator:
        return _INT64

    def boolean(self) -> BooleanValidator:
        return _BOOLEAN

    def null(self) -> NullValidator:
        return _NULL

    def bytes(self) -> BytesValidator:
        return _BYTES

    def any(self) -> AnyValidator:
        return _ANY

    def id(self, table: str) -> IdValidator:
        return IdValidator(table)

    def literal(self, value: str | float | bool | Int64) -> LiteralValidator:
        return LiteralValidator(value)

    def array(self, item: Validator) -> ArrayValidator:
        return ArrayValidator(item)

    def object(self, fields: Mapping[str, Validator]) -> ObjectValidator:
        return ObjectValidator(fields)

    def record(self, keys: Validator, values: Validator) -> RecordValidator:
        return RecordValidator(keys, values)

    def union(self, *members: Validator) -> UnionValidator:
        return UnionValidator(*members)

    def optional(self, inner: Validator) -> OptionalValidator:
        if isinstance(inner, OptionalValidator):
            return inner
        if not isinstance(inner, Validator):
            raise DeveloperError(f"v.optional() needs a validator, not {type(inner).__name__}")
        return OptionalValidator(inner)


_STRING: Final = StringValidator()
_NUMBER: Final = FloatValidator("number")
_FLOAT64: Final = FloatValidator("float64")
_INT64: Final = Int64Validator()
_BOOLEAN: Final = BooleanValidator()
_NULL: Final = NullValidator()
_BYTES: Final = BytesValidator()
_ANY: Final = AnyValidator()

v: Final = _ValidatorBuilder()
"""Validator constructors: `v.string()`, `v.object({"email": v.string()})`, ... ."""
