"""Filter expressions for `query.filter(lambda q: ...)`.

`q.field("a.b")` reads a (possibly nested) field; comparisons use Convex's total order of
values (so `1.0` and `Int64(1)` are different, and a missing field is less than `None`);
`and_`/`or_`/`not_` combine booleans; `add`, `sub`, `mul`, `div`, `mod`, `neg` do
arithmetic on two numbers of the same type. A document is kept when its expression is
exactly `True`.

Beyond Convex (Owlat's extensions, for segment-style filters): `lower` (a string in lower
case; other values unchanged), `contains` / `starts_with` (substring tests, False unless
both sides are strings), `includes` (an array holds a value), `is_type` (the value's
type: "undefined", "null", "int64", "number", "boolean", "string", "bytes", "array",
"object").

Expressions are plain data: `pushdown.py` translates them into the engine's SQL, so the
database skips documents that cannot match (and counts matches without loading them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

from owlat.runtime.database.catalog import field_value
from owlat.runtime.database.keys import compare_values
from owlat.runtime.errors import QueryBuildError
from owlat.runtime.types import UNDEFINED, Document, Int64
from owlat.runtime.values import normalize_value


class Expression:
    """A node of a filter expression."""

    def evaluate(self, document: Document) -> Any:
        raise NotImplementedError

    def __bool__(self) -> bool:
        raise QueryBuildError(
            "A filter expression cannot be used as a Python bool: combine conditions "
            "with q.and_(...), q.or_(...) and q.not_(...)"
        )


class Field(Expression):
    def __init__(self, path: str) -> None:
        if not isinstance(path, str) or not path:
            raise QueryBuildError(f"q.field() takes a field path string, got {path!r}")
        self.path = path

    def evaluate(self, document: Document) -> Any:
        return field_value(document, self.path)


class Literal(Expression):
    def __init__(self, value: Any) -> None:
        # UNDEFINED compares as a missing field (`q.eq(q.field("x"), UNDEFINED)`)
        self.value = value if value is UNDEFINED else normalize_value(value)

    def evaluate(self, document: Document) -> Any:
        return self.value


def _as_expression(value: Any) -> Expression:
    return value if isinstance(value, Expression) else Literal(value)


class Compare(Expression):
    TESTS: ClassVar[dict[str, Callable[[int], bool]]] = {
        "eq": lambda c: c == 0,
        "neq": lambda c: c != 0,
        "lt": lambda c: c < 0,
        "lte": lambda c: c <= 0,
        "gt": lambda c: c > 0,
        "gte": lambda c: c >= 0,
    }

    def __init__(self, op: str, left: Any, right: Any) -> None:
        self.op = op
        self.left, self.right = _as_expression(left), _as_expression(right)
        self._test = self.TESTS[op]

    def evaluate(self, document: Document) -> bool:
        return self._test(
            compare_values(self.left.evaluate(document), self.right.evaluate(document))
        )


class Logical(Expression):
    def __init__(self, op: str, operands: tuple[Any, ...]) -> None:
        self.op = op
        self.operands = [_as_expression(operand) for operand in operands]

    def evaluate(self, document: Document) -> bool:
        if self.op == "not":
            return self.operands[0].evaluate(document) is not True
        if self.op == "and":
            return all(operand.evaluate(document) is True for operand in self.operands)
        return any(operand.evaluate(document) is True for operand in self.operands)


def _arith(op: str, left: Any, right: Any) -> Any:
    if isinstance(left, Int64) and isinstance(right, Int64):
        if op == "div":
            if right == 0:
                raise QueryBuildError("Division of int64 by zero in a filter")
            return Int64(int(left / right))
        if op == "mod":
            if right == 0:
                raise QueryBuildError("Modulo of int64 by zero in a filter")
            return Int64(int(math.fmod(left, right)))
        result = {"add": left + right, "sub": left - right, "mul": left * right}[op]
        return Int64(((result + 2**63) % 2**64) - 2**63)
    if isinstance(left, float) and isinstance(right, float):
        if op == "div":
            if right != 0.0:
                return left / right
            if left == 0.0 or math.isnan(left):
                return math.nan
            return math.copysign(math.inf, left) * math.copysign(1.0, right)
        if op == "mod":
            return math.fmod(left, right) if right else math.nan
        return {"add": left + right, "sub": left - right, "mul": left * right}[op]
    raise QueryBuildError(
        f"Cannot {op} {type(left).__name__} and {type(right).__name__} in a filter: "
        "arithmetic needs two float64 numbers or two int64 values"
    )


class Arithmetic(Expression):
    def __init__(self, op: str, left: Any, right: Any) -> None:
        self.op = op
        self.left, self.right = _as_expression(left), _as_expression(right)

    def evaluate(self, document: Document) -> Any:
        left, right = self.left.evaluate(document), self.right.evaluate(document)
        if left is UNDEFINED or right is UNDEFINED:
            return UNDEFINED
        return _arith(self.op, left, right)


class Negate(Expression):
    def __init__(self, operand: Any) -> None:
        self.operand = _as_expression(operand)

    def evaluate(self, document: Document) -> Any:
        value = self.operand.evaluate(document)
        if isinstance(value, Int64):
            return Int64(-value)
        if isinstance(value, float):
            return -value
        raise QueryBuildError(f"Cannot negate {type(value).__name__} in a filter")


class Lower(Expression):
    def __init__(self, operand: Any) -> None:
        self.operand = _as_expression(operand)

    def evaluate(self, document: Document) -> Any:
        value = self.operand.evaluate(document)
        return value.lower() if isinstance(value, str) else value


class StringTest(Expression):
    """`contains` or `starts_with`: False unless both sides are strings."""

    def __init__(self, op: str, text: Any, part: Any) -> None:
        self.op = op
        self.text, self.part = _as_expression(text), _as_expression(part)

    def evaluate(self, document: Document) -> bool:
        text, part = self.text.evaluate(document), self.part.evaluate(document)
        if not isinstance(text, str) or not isinstance(part, str):
            return False
        return part in text if self.op == "contains" else text.startswith(part)


class Includes(Expression):
    def __init__(self, array: Any, value: Any) -> None:
        self.array, self.value = _as_expression(array), _as_expression(value)

    def evaluate(self, document: Document) -> bool:
        array, value = self.array.evaluate(document), self.value.evaluate(document)
        if not isinstance(array, list):
            return False
        return any(compare_values(item, value) == 0 for item in array)


TYPE_NAMES = (
    "undefined",
    "null",
    "int64",
    "number",
    "boolean",
    "string",
    "bytes",
    "array",
    "object",
)


def type_name(value: Any) -> str:
    """The Convex type of a value, as `is_type` names it."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Int64):
        return "int64"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    return "array" if isinstance(value, list) else "object"


class IsType(Expression):
    def __init__(self, operand: Any, name: str) -> None:
        if name not in TYPE_NAMES:
            raise QueryBuildError(f"is_type() takes one of {', '.join(TYPE_NAMES)}, got {name!r}")
        self.operand = _as_expression(operand)
        self.name = name

    def evaluate(self, document: Document) -> bool:
        return type_name(self.operand.evaluate(document)) == self.name


class FilterBuilder:
    """The `q` given to `query.filter(lambda q: ...)`."""

    def field(self, path: str) -> Expression:
        return Field(path)

    def eq(self, left: Any, right: Any) -> Expression:
        return Compare("eq", left, right)

    def neq(self, left: Any, right: Any) -> Expression:
        return Compare("neq", left, right)

    def lt(self, left: Any, right: Any) -> Expression:
        return Compare("lt", left, right)

    def lte(self, left: Any, right: Any) -> Expression:
        return Compare("lte", left, right)

    def gt(self, left: Any, right: Any) -> Expression:
        return Compare("gt", left, right)

    def gte(self, left: Any, right: Any) -> Expression:
        return Compare("gte", left, right)

    def and_(self, *operands: Any) -> Expression:
        return Logical("and", operands)

    def or_(self, *operands: Any) -> Expression:
        return Logical("or", operands)

    def not_(self, operand: Any) -> Expression:
        return Logical("not", (operand,))

    def add(self, left: Any, right: Any) -> Expression:
        return Arithmetic("add", left, right)

    def sub(self, left: Any, right: Any) -> Expression:
        return Arithmetic("sub", left, right)

    def mul(self, left: Any, right: Any) -> Expression:
        return Arithmetic("mul", left, right)

    def div(self, left: Any, right: Any) -> Expression:
        return Arithmetic("div", left, right)

    def mod(self, left: Any, right: Any) -> Expression:
        return Arithmetic("mod", left, right)

    def neg(self, operand: Any) -> Expression:
        return Negate(operand)

    def lower(self, operand: Any) -> Expression:
        return Lower(operand)

    def contains(self, text: Any, part: Any) -> Expression:
        return StringTest("contains", text, part)

    def starts_with(self, text: Any, prefix: Any) -> Expression:
        return StringTest("starts_with", text, prefix)

    def includes(self, array: Any, value: Any) -> Expression:
        return Includes(array, value)

    def is_type(self, operand: Any, name: str) -> Expression:
        return IsType(operand, name)


def document_filter(predicate: Callable[[FilterBuilder], Expression]) -> Callable[[Document], bool]:
    """`predicate` (as given to `query.filter`) as a test of one document in Python: what
    the filter would keep, for code that must judge a document it already holds (a
    trigger comparing a document before and after a write)."""
    expression = predicate(FilterBuilder())
    if not isinstance(expression, Expression):
        raise QueryBuildError(
            f"A filter must return an expression built from q, got {expression!r}"
        )

    def keeps(document: Document) -> bool:
        return expression.evaluate(document) is True

    return keeps
