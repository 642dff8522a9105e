"""Filter push-down: a filter expression (filters.py) as a SQL predicate over stored documents.

The predicate is three-valued: TRUE where the expression is certainly True for the row,
FALSE where it is certainly not, NULL where SQL cannot tell (a field holding an int64, bytes,
a special float or a nested object, Unicode lower-casing the database does differently,
arithmetic, two fields compared). The engine returns the rows that are not FALSE and
Python evaluates the expression on them as before, so a scan's result is exact whatever the
translation covers; `count()` adds the TRUE rows counted in SQL to the NULL rows evaluated
in Python. Soundness rests on one rule: a branch answers TRUE or FALSE only when it knows
Python's answer (`compare_values` on the exact value, or the same comparison in SQL).

Stored documents are Convex JSON: a float64 is a JSON number (NaN, ±inf and -0.0 are
`{"$float": …}` objects), an int64 `{"$integer": …}`, bytes `{"$bytes": …}`, a missing field is
absent. Each dialect classifies a field by its JSON type: missing, null, number, true,
false, string, array, object (object = unknown unless the test is about strings/arrays).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from owlat.runtime.database.engine import Dialect, Predicate
from owlat.runtime.database.filters import (
    Compare,
    Expression,
    Field,
    Includes,
    IsType,
    Literal,
    Logical,
    Lower,
    StringTest,
)
from owlat.runtime.database.keys import compare_values
from owlat.runtime.types import UNDEFINED, Int64

TRUE, FALSE, UNKNOWN = "TRUE", "FALSE", "NULL"
_FLIP = {"eq": "eq", "neq": "neq", "lt": "gt", "lte": "gte", "gt": "lt", "gte": "lte"}
_SQL_OP = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_TESTS = Compare.TESTS
# The exact value a JSON type stands for, when there is only one (missing, null, booleans),
# or a representative of its Convex type (for comparisons with literals of another type).
_EXACT = {"missing": UNDEFINED, "null": None, "true": True, "false": False}
_REPRESENTATIVE = {"number": 0.0, "string": "", "array": []}


def _const(value: bool) -> Predicate:
    return Predicate(TRUE if value else FALSE, ())


_UNKNOWN = Predicate(UNKNOWN, ())
_FALSE = _const(False)


def _compare_branch(json_type: str, op: str, literal: Any) -> Predicate | None:
    """The branch's constant answer, or None when it needs SQL (same Convex type)."""
    if json_type in _EXACT:
        return _const(_TESTS[op](compare_values(_EXACT[json_type], literal)))
    if json_type == "object":
        return _UNKNOWN
    sign = compare_values(_REPRESENTATIVE[json_type], literal)
    same_type = type(literal) is type(_REPRESENTATIVE[json_type]) or (
        json_type == "number" and isinstance(literal, float)
    )
    if not same_type:
        return _const(_TESTS[op](sign))
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class _ByType:
    """A test of one field decided by its JSON type: one branch per type, rendered as one
    `CASE` over the type. Kept unrendered while the tree is compiled, so that tests of the
    same field under one AND / OR (or a NOT) become one `CASE` whose branches are combined:
    both tests pick the same branch for a row, so the result is the same, and the type is
    read once instead of once per test (a number condition is `is_number AND compare`)."""

    field: str
    branches: dict[str, Predicate]


_Node = Predicate | _ByType


def _combine(op: str, left: Predicate, right: Predicate) -> Predicate:
    """`left AND right` (op "and") or `left OR right`, constants folded (exact in SQL's
    three-valued logic: FALSE AND NULL is FALSE, TRUE OR NULL is TRUE)."""
    absorbing, neutral = (FALSE, TRUE) if op == "and" else (TRUE, FALSE)
    if absorbing in (left.sql, right.sql):
        return Predicate(absorbing, ())
    if left.sql == neutral:
        return right
    if right.sql == neutral:
        return left
    joiner = " AND " if op == "and" else " OR "
    return Predicate(f"({left.sql}{joiner}{right.sql})", left.params + right.params)


def _negate(part: Predicate) -> Predicate:
    flipped = {TRUE: FALSE, FALSE: TRUE, UNKNOWN: UNKNOWN}.get(part.sql)
    if flipped is not None:
        return Predicate(flipped, ())
    return Predicate(f"(NOT {part.sql})", part.params)


class Compiler:
    """Translates one expression tree for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect

    def predicate(self, expression: Expression) -> Predicate:
        return self._render(self._node(expression))

    def _render(self, node: _Node) -> Predicate:
        if isinstance(node, _ByType):
            return self.d.by_type(node.field, node.branches)
        return node

    def _logical(self, expression: Logical) -> _Node:
        nodes = [self._node(operand) for operand in expression.operands]
        if expression.op == "not":
            (node,) = nodes
            if isinstance(node, _ByType):
                return _ByType(node.field, {t: _negate(b) for t, b in node.branches.items()})
            return _negate(node)
        if not nodes:
            return _const(expression.op == "and")
        order: list[Predicate | str] = []  # a str: the field whose tests `fields` holds
        fields: dict[str, _ByType] = {}
        for node in nodes:
            if isinstance(node, Predicate):
                order.append(node)
            elif node.field not in fields:
                fields[node.field] = node
                order.append(node.field)
            else:
                first = fields[node.field]
                fields[node.field] = _ByType(
                    node.field,
                    {
                        json_type: _combine(expression.op, branch, node.branches[json_type])
                        for json_type, branch in first.branches.items()
                    },
                )
        merged = [fields[item] if isinstance(item, str) else item for item in order]
        if len(merged) == 1:
            return merged[0]
        parts = [self._render(node) for node in merged]
        joiner = " AND " if expression.op == "and" else " OR "
        return Predicate(
            "(" + joiner.join(p.sql for p in parts) + ")",
            tuple(param for p in parts for param in p.params),
        )

    def _node(self, expression: Expression) -> _Node:
        if isinstance(expression, Logical):
            return self._logical(expression)
        if isinstance(expression, Compare):
            return self._compare(expression)
        if isinstance(expression, StringTest):
            return self._string_test(expression)
        if isinstance(expression, Includes):
            return self._includes(expression)
        if isinstance(expression, IsType):
            return self._is_type(expression)
        if isinstance(expression, Field):
            # a bare field used as a condition: kept when its value is exactly True
            return self._by_type(expression.path, {"true": _const(True)}, default=FALSE)
        if isinstance(expression, Literal):
            return _const(expression.value is True)
        return _UNKNOWN

    def _by_type(self, field: str, branches: dict[str, Predicate], default: str = FALSE) -> _ByType:
        complete = {
            json_type: branches.get(json_type, Predicate(default, ()))
            for json_type in ("missing", "null", "number", "true", "false", "string", "array")
        }
        complete["object"] = branches.get("object", Predicate(default, ()))
        return _ByType(field, complete)

    @staticmethod
    def _field_of(expression: Expression) -> tuple[str, bool] | None:
        """(path, lower-cased) for `field` or `lower(field)`, else None."""
        if isinstance(expression, Field):
            return expression.path, False
        if isinstance(expression, Lower) and isinstance(expression.operand, Field):
            return expression.operand.path, True
        return None

    def _text(self, path: str, lowered: bool) -> str:
        text = self.d.text(path)
        return self.d.lower(text) if lowered else text

    def _compare(self, expression: Compare) -> _Node:
        left, right, op = expression.left, expression.right, expression.op
        if isinstance(left, Literal) and isinstance(right, Literal):
            return _const(_TESTS[op](compare_values(left.value, right.value)))
        if isinstance(left, Literal):
            left, right, op = right, left, _FLIP[op]
        target = self._field_of(left)
        if target is None or not isinstance(right, Literal):
            return _UNKNOWN
        path, lowered = target
        literal: Any = right.value
        branches: dict[str, Predicate] = {}
        for json_type in (
            "missing",
            "null",
            "number",
            "true",
            "false",
            "string",
            "array",
            "object",
        ):
            constant = _compare_branch(json_type, op, literal)
            if constant is not None:
                branches[json_type] = constant
            elif json_type == "string" and "\x00" in literal:
                branches[json_type] = _UNKNOWN  # PostgreSQL text cannot hold NUL
            elif json_type == "string":
                compared = f"{self._text(path, lowered)} {_SQL_OP[op]} {self.d.placeholder}"
                branches[json_type] = Predicate(self.d.string_test(path, compared), (literal,))
            elif json_type == "number" and math.isfinite(literal) and literal != 0.0:
                branches[json_type] = Predicate(
                    f"{self.d.number(path)} {_SQL_OP[op]} {self.d.placeholder}", (literal,)
                )
            elif json_type == "number" and literal == 0.0 and math.copysign(1.0, literal) > 0:
                # stored zeros are +0.0 (a -0.0 is stored as an object: unknown)
                branches[json_type] = Predicate(
                    f"{self.d.number(path)} {_SQL_OP[op]} {self.d.placeholder}", (0.0,)
                )
            else:
                branches[json_type] = _UNKNOWN
        return self._by_type(path, branches)

    def _string_test(self, expression: StringTest) -> _Node:
        target = self._field_of(expression.text)
        part = expression.part
        if target is None or not isinstance(part, Literal):
            return _UNKNOWN
        if not isinstance(part.value, str):
            return _const(False)
        if "\x00" in part.value:
            return _UNKNOWN
        path, lowered = target
        text = self._text(path, lowered)
        test = self.d.contains(text) if expression.op == "contains" else self.d.starts_with(text)
        string = Predicate(self.d.string_test(path, test), (part.value,))
        return self._by_type(path, {"string": string})

    def _includes(self, expression: Includes) -> _Node:
        if not isinstance(expression.array, Field) or not isinstance(expression.value, Literal):
            return _UNKNOWN
        value = expression.value.value
        if not (value is None or isinstance(value, bool | str) or _plain_float(value)):
            return _UNKNOWN
        if isinstance(value, str) and "\x00" in value:
            return _UNKNOWN
        test = self.d.array_includes(expression.array.path, value)
        if test is None:
            return _UNKNOWN
        if isinstance(value, str):
            test = Predicate(self.d.string_test(expression.array.path, test.sql), test.params)
        return self._by_type(expression.array.path, {"array": test})

    def _is_type(self, expression: IsType) -> _Node:
        if not isinstance(expression.operand, Field):
            return _UNKNOWN
        name = expression.name
        branches = {
            "missing": _const(name == "undefined"),
            "null": _const(name == "null"),
            "number": _const(name == "number"),
            "true": _const(name == "boolean"),
            "false": _const(name == "boolean"),
            "string": _const(name == "string"),
            "array": _const(name == "array"),
            "object": _UNKNOWN if name in ("int64", "bytes", "number", "object") else _FALSE,
        }
        return self._by_type(expression.operand.path, branches)


def _plain_float(value: Any) -> bool:
    return (
        isinstance(value, float)
        and not isinstance(value, Int64)
        and math.isfinite(value)
        and not (value == 0.0 and math.copysign(1.0, value) < 0)
    )


def compile_filters(dialect: Dialect, expressions: list[Expression]) -> Predicate | None:
    """The AND of `expressions` as a predicate, or None when SQL can decide nothing."""
    if not expressions:
        return None
    compiler = Compiler(dialect)
    parts = []
    for expression in expressions:
        try:
            parts.append(compiler.predicate(expression))
        except _Unsupported:
            parts.append(_UNKNOWN)
    if all(part.sql == UNKNOWN for part in parts):
        return None
    if len(parts) == 1:
        return parts[0]
    return Predicate(
        "(" + " AND ".join(p.sql for p in parts) + ")",
        tuple(param for p in parts for param in p.params),
    )


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_$]+$")


def _names(field: str) -> list[str]:
    names = field.split(".")
    if not all(_SAFE_NAME.match(name) for name in names):
        raise _Unsupported(field)
    return names


class _Unsupported(Exception):
    """A field path the dialect cannot quote: the condition stays in Python."""


class SqliteDialect:
    """SQLite's json1 over `d.value` (the document's JSON text).

    json_type: null, true, false, integer, real, text, array, object (NULL when missing).
    Lower-casing calls Python's str.lower through the `owlat_lower` function the engine
    registers on every connection, so it is exact.
    """

    placeholder = "?"

    def path(self, field: str) -> str:
        return "'$" + "".join(f'."{name}"' for name in _names(field)) + "'"

    def by_type(self, field: str, branches: dict[str, Predicate]) -> Predicate:
        order = [
            ("'null'", "null"),
            ("'integer'", "number"),
            ("'real'", "number"),
            ("'true'", "true"),
            ("'false'", "false"),
            ("'text'", "string"),
            ("'array'", "array"),
            ("'object'", "object"),
        ]
        sql = f"CASE json_type(d.value, {self.path(field)})"
        params: list[Any] = []
        for tag, name in order:
            sql += f" WHEN {tag} THEN {branches[name].sql}"
            params.extend(branches[name].params)
        sql += f" ELSE {branches['missing'].sql} END"
        params.extend(branches["missing"].params)
        return Predicate(sql, tuple(params))

    def text(self, field: str) -> str:
        return f"json_extract(d.value, {self.path(field)})"

    number = text

    def lower(self, text_sql: str) -> str:
        return f"owlat_lower({text_sql})"

    def string_test(self, field: str, test_sql: str) -> str:
        # json1 (3.40) cuts a string at an escaped NUL: such values go to Python. `->` gives
        # the field's JSON text with its escapes, so only the field is searched, not the
        # whole document (a tenth of a 1M-contact ad-hoc segment count).
        return f"CASE WHEN instr(d.value -> {self.path(field)}, '\\u0000') = 0 THEN {test_sql} END"

    def contains(self, text_sql: str) -> str:
        return f"instr({text_sql}, ?) > 0"

    def starts_with(self, text_sql: str) -> str:
        return f"instr({text_sql}, ?) = 1"

    def array_includes(self, field: str, value: Any) -> Predicate | None:
        each = f"SELECT 1 FROM json_each(d.value, {self.path(field)}) AS e WHERE "
        if value is None:
            return Predicate(f"EXISTS ({each}e.type = 'null')", ())
        if isinstance(value, bool):
            return Predicate(f"EXISTS ({each}e.type = '{'true' if value else 'false'}')", ())
        if isinstance(value, str):
            return Predicate(f"EXISTS ({each}e.type = 'text' AND e.value = ?)", (value,))
        return Predicate(f"EXISTS ({each}e.type IN ('integer', 'real') AND e.value = ?)", (value,))


class PostgresDialect:
    """PostgreSQL jsonb over `x.j` (the document parsed once per row by the statement).

    jsonb_typeof: object, array, string, number, boolean, null (NULL when missing). Text
    comparisons use the "C" collation (code point order, as Convex). lower() is trusted
    only on ASCII text; elsewhere the row is left to Python.
    """

    placeholder = "%s"

    def path(self, field: str) -> str:
        return "'{" + ",".join(_names(field)) + "}'"

    def by_type(self, field: str, branches: dict[str, Predicate]) -> Predicate:
        value = f"(x.j #> {self.path(field)})"
        boolean = Predicate(
            f"CASE WHEN {value}::boolean THEN {branches['true'].sql} "
            f"ELSE {branches['false'].sql} END",
            branches["true"].params + branches["false"].params,
        )
        order = [
            ("'null'", branches["null"]),
            ("'number'", branches["number"]),
            ("'boolean'", boolean),
            ("'string'", branches["string"]),
            ("'array'", branches["array"]),
            ("'object'", branches["object"]),
        ]
        sql = f"CASE jsonb_typeof({value})"
        params: list[Any] = []
        for tag, branch in order:
            sql += f" WHEN {tag} THEN {branch.sql}"
            params.extend(branch.params)
        sql += f" ELSE {branches['missing'].sql} END"
        params.extend(branches["missing"].params)
        return Predicate(sql, tuple(params))

    def text(self, field: str) -> str:
        return f'((x.j #>> {self.path(field)}) COLLATE "C")'

    def number(self, field: str) -> str:
        return f"(x.j #> {self.path(field)})::float8"

    def lower(self, text_sql: str) -> str:
        return (
            f"(CASE WHEN octet_length({text_sql}) = char_length({text_sql}) "
            f'THEN lower({text_sql}) END COLLATE "C")'
        )

    def string_test(self, field: str, test_sql: str) -> str:
        return test_sql  # PostgreSQL text holds every string whole

    def contains(self, text_sql: str) -> str:
        return f"strpos({text_sql}, %s) > 0"

    def starts_with(self, text_sql: str) -> str:
        return f"strpos({text_sql}, %s) = 1"

    def array_includes(self, field: str, value: Any) -> Predicate | None:
        each = f"SELECT 1 FROM jsonb_array_elements(x.j #> {self.path(field)}) AS e(v) WHERE "
        if value is None:
            return Predicate(f"EXISTS ({each}e.v = 'null'::jsonb)", ())
        if isinstance(value, bool):
            return Predicate(f"EXISTS ({each}e.v = '{'true' if value else 'false'}'::jsonb)", ())
        if isinstance(value, str):
            return Predicate(f"EXISTS ({each}e.v = to_jsonb(%s::text))", (value,))
        return Predicate(
            f"EXISTS ({each}jsonb_typeof(e.v) = 'number' AND (e.v)::float8 = %s)", (value,)
        )
