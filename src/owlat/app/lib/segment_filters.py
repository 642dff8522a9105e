"""The segment condition language (reference §9, plus nested AND/OR groups and dates).

    filters   = {"logic": "AND" | "OR", "conditions": [Condition | Group, ...]}
    Group     = {"logic": "AND" | "OR", "conditions": [...]}      (nesting depth ≤ 5)
    Condition = {"kind": "contact_property", "field": <built-in or custom key>,
                 "operator": <op>, "value"?: ...}
              | {"kind": "email_activity", "field": "opened" | "clicked",
                 "operator": "is_true" | "is_false"}
              | {"kind": "list_membership", "listId": <id>, "operator": "equals" | "not_equals"}
                (upstream's {"kind": "topic_membership", "topicId": ...} is accepted too)

At most 50 conditions in all. Built-in fields: email, firstName, lastName, source,
language, timezone (strings) and createdAt (a date); any other field is a custom property
key of the organization (`contactProperties`), whose type picks the operators:

    string   equals, not_equals, contains, not_contains, starts_with (all case-insensitive;
             the value must not be empty), is_empty, not_empty
    number   equals, not_equals, gt, gte, lt, lte, is_empty, not_empty
    boolean  is_true, is_false, is_empty, not_empty
    date     before, after (epoch ms or an ISO 8601 date), in_last, not_in_last
             ({"amount": n, "unit": "minutes" | "hours" | "days" | "weeks"}: within the
             n units up to the query's `now`), is_empty, not_empty

Missing values: "empty" is missing, null or "". A positive operator never matches a
missing value; every negative operator (not_equals, not_contains, not_in_last) is the
exact complement of its positive, so a contact without a value matches it (upstream reads
a missing value as ''). `is_false` does not match a missing boolean (use is_empty); for
email activity a missing flag means "not opened / not clicked".

`validate` returns the normalized tree (numbers as floats, dates as epoch ms, only known
keys kept) or raises an error naming the path of the bad part, e.g.
`conditions[2].conditions[0].operator: "gt" is not valid for string property "plan"`.
`compile` turns a tree into one database filter (only live contacts match), built from
the runtime's filter operations alone so the database evaluates it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from owlat.app.lib.audience import clean_property_value
from owlat.app.lib.errors import AppError, invalid

Predicate = Callable[[Any], Any]  # q (the runtime's FilterBuilder) -> expression

MAX_DEPTH: Final = 5
MAX_CONDITIONS: Final = 50
MAX_STRING: Final = 1000
MAX_AMOUNT: Final = 100_000
LOGICS: Final = ("AND", "OR")
BUILT_IN_FIELDS: Final[dict[str, str]] = {
    "email": "string",
    "firstName": "string",
    "lastName": "string",
    "source": "string",
    "language": "string",
    "timezone": "string",
    "createdAt": "date",
}
OPERATORS: Final[dict[str, tuple[str, ...]]] = {
    "string": (
        "equals",
        "not_equals",
        "contains",
        "not_contains",
        "starts_with",
        "is_empty",
        "not_empty",
    ),
    "number": ("equals", "not_equals", "gt", "gte", "lt", "lte", "is_empty", "not_empty"),
    "boolean": ("is_true", "is_false", "is_empty", "not_empty"),
    "date": ("before", "after", "in_last", "not_in_last", "is_empty", "not_empty"),
}
VALUELESS: Final = frozenset({"is_empty", "not_empty", "is_true", "is_false"})
UNIT_MS: Final[dict[str, float]] = {
    "minutes": 60_000.0,
    "hours": 3_600_000.0,
    "days": 86_400_000.0,
    "weeks": 604_800_000.0,
}
ACTIVITY_FIELDS: Final[dict[str, str]] = {"opened": "hasOpened", "clicked": "hasClicked"}
NEGATIONS: Final[dict[str, str]] = {
    "not_equals": "equals",
    "not_contains": "contains",
    "not_in_last": "in_last",
    "not_empty": "is_empty",
}

Definitions = Mapping[str, Mapping[str, Any]]


def filter_error(path: str, message: str) -> AppError:
    return invalid("INVALID_FILTERS", f"{path}: {message}" if path else message)


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


class _Validator:
    """One validation run: counts conditions across the whole tree."""

    def __init__(self, definitions: Definitions, list_ids: Collection[str] | None) -> None:
        self.definitions = definitions
        self.list_ids = list_ids
        self.conditions = 0

    def group(self, node: Any, path: str, depth: int) -> dict[str, Any]:
        where = path or "filters"
        if not isinstance(node, Mapping):
            raise filter_error(where, 'must be an object {"logic", "conditions"}')
        if depth > MAX_DEPTH:
            raise filter_error(where, f"groups may be nested at most {MAX_DEPTH} deep")
        logic = node.get("logic")
        if logic not in LOGICS:
            raise filter_error(_join(path, "logic"), f'must be "AND" or "OR", got {logic!r}')
        conditions = node.get("conditions")
        if not isinstance(conditions, list):
            raise filter_error(_join(path, "conditions"), "must be a list")
        if not conditions and depth > 1:
            raise filter_error(_join(path, "conditions"), "a group needs at least one condition")
        items = []
        for index, item in enumerate(conditions):
            item_path = _join(path, f"conditions[{index}]")
            if (
                isinstance(item, Mapping)
                and "kind" not in item
                and ("logic" in item or "conditions" in item)
            ):
                items.append(self.group(item, item_path, depth + 1))
            else:
                items.append(self.condition(item, item_path))
        return {"logic": logic, "conditions": items}

    def condition(self, node: Any, path: str) -> dict[str, Any]:
        if not isinstance(node, Mapping):
            raise filter_error(path, "must be a condition object or a group")
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise filter_error(path, f"at most {MAX_CONDITIONS} conditions are allowed")
        kind = node.get("kind")
        if kind == "contact_property":
            return self.property_condition(node, path)
        if kind == "email_activity":
            return self.activity_condition(node, path)
        if kind in ("list_membership", "topic_membership"):
            return self.membership_condition(node, path, kind)
        raise filter_error(
            _join(path, "kind"),
            f"must be contact_property, email_activity or list_membership, got {kind!r}",
        )

    def property_condition(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        field = node.get("field")
        if not isinstance(field, str) or not field:
            raise filter_error(_join(path, "field"), "must be a property key")
        kind = property_type(field, self.definitions)
        if kind is None:
            raise filter_error(_join(path, "field"), f'unknown property "{field}"')
        operator = node.get("operator")
        if operator not in OPERATORS[kind]:
            raise filter_error(
                _join(path, "operator"),
                f'{_shown(operator)} is not valid for {kind} property "{field}"; '
                f"use one of {', '.join(OPERATORS[kind])}",
            )
        result: dict[str, Any] = {"kind": "contact_property", "field": field, "operator": operator}
        if operator not in VALUELESS:
            result["value"] = _value(kind, operator, node.get("value"), _join(path, "value"))
        elif node.get("value") not in (None, ""):
            raise filter_error(_join(path, "value"), f'"{operator}" takes no value')
        return result

    def activity_condition(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        field, operator = node.get("field"), node.get("operator")
        if field not in ACTIVITY_FIELDS:
            raise filter_error(
                _join(path, "field"), f'must be "opened" or "clicked", got {field!r}'
            )
        if operator not in ("is_true", "is_false"):
            raise filter_error(
                _join(path, "operator"), f'must be "is_true" or "is_false", got {operator!r}'
            )
        return {"kind": "email_activity", "field": field, "operator": operator}

    def membership_condition(self, node: Mapping[str, Any], path: str, kind: str) -> dict[str, Any]:
        key = "listId" if kind == "list_membership" else "topicId"
        list_id, operator = node.get(key), node.get("operator")
        if not isinstance(list_id, str) or not list_id:
            raise filter_error(_join(path, key), "must be a mailing list id")
        if self.list_ids is not None and list_id not in self.list_ids:
            raise filter_error(_join(path, key), f'mailing list "{list_id}" not found')
        if operator not in ("equals", "not_equals"):
            raise filter_error(
                _join(path, "operator"), f'must be "equals" or "not_equals", got {operator!r}'
            )
        return {"kind": "list_membership", "listId": list_id, "operator": operator}


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def property_type(field: str, definitions: Definitions) -> str | None:
    """The type of a built-in field or custom property key (None: unknown)."""
    if field in BUILT_IN_FIELDS:
        return BUILT_IN_FIELDS[field]
    definition = definitions.get(field)
    return None if definition is None else str(definition["type"])


def _value(kind: str, operator: str, value: Any, path: str) -> Any:
    if kind == "string":
        if not isinstance(value, str) or not value.strip():
            raise filter_error(
                path, f'"{operator}" needs a non-empty text value (use is_empty for no value)'
            )
        if len(value) > MAX_STRING:
            raise filter_error(path, f"must be at most {MAX_STRING} characters")
        return value
    if kind == "number":
        return _number(value, path)
    if operator in ("in_last", "not_in_last"):
        return _period(value, path)
    try:
        return clean_property_value({"key": "value", "type": "date"}, value)
    except AppError:
        raise filter_error(
            path, "must be a date: epoch milliseconds or ISO 8601 (e.g. 2024-05-31)"
        ) from None


def _number(value: Any, path: str) -> float:
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        raise filter_error(path, f"must be a number, got {value!r}")
    return float(number)


def _period(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise filter_error(path, 'must be {"amount": n, "unit": "minutes|hours|days|weeks"}')
    amount, unit = value.get("amount"), value.get("unit")
    if (
        isinstance(amount, bool)
        or not isinstance(amount, int | float)
        or not 1 <= amount <= MAX_AMOUNT
        or amount != int(amount)
    ):
        raise filter_error(
            _join(path, "amount"), f"must be a whole number from 1 to {MAX_AMOUNT}, got {amount!r}"
        )
    if unit not in UNIT_MS:
        raise filter_error(
            _join(path, "unit"), f"must be one of {', '.join(UNIT_MS)}, got {unit!r}"
        )
    return {"amount": float(amount), "unit": unit}


def validate(
    filters: Any, definitions: Definitions, list_ids: Collection[str] | None
) -> dict[str, Any]:
    """The normalized filters, or an `INVALID_FILTERS` error naming the bad part's path.

    `definitions`: the organization's property definitions by key; `list_ids`: its mailing
    list ids (None skips that check: a stored segment's list may since have been deleted,
    and then simply has no members)."""
    return _Validator(definitions, list_ids).group(filters, "", 1)


def compile(filters: Any, definitions: Definitions, now: float) -> Predicate:
    """A `query.filter` predicate matching the live contacts `filters` selects (`now`, in
    epoch ms, anchors in_last / not_in_last). `filters` is validated again first."""
    tree = validate(filters, definitions, None)

    def predicate(q: Any) -> Any:
        live = q.is_type(q.field("deletedAt"), "undefined")
        if not tree["conditions"]:
            return live
        return q.and_(live, _group(q, tree, definitions, now))

    return predicate


def _group(q: Any, node: Mapping[str, Any], definitions: Definitions, now: float) -> Any:
    parts = [
        _group(q, item, definitions, now)
        if "logic" in item
        else _condition(q, item, definitions, now)
        for item in node["conditions"]
    ]
    if len(parts) == 1:
        return parts[0]
    return q.and_(*parts) if node["logic"] == "AND" else q.or_(*parts)


def _condition(q: Any, node: Mapping[str, Any], definitions: Definitions, now: float) -> Any:
    kind, operator = node["kind"], node["operator"]
    if kind == "email_activity":
        opened = q.eq(q.field(ACTIVITY_FIELDS[node["field"]]), True)
        return opened if operator == "is_true" else q.not_(opened)
    if kind == "list_membership":
        member = q.includes(q.field("mailingListIds"), node["listId"])
        return member if operator == "equals" else q.not_(member)
    field = node["field"]
    path = field if field in BUILT_IN_FIELDS else f"properties.{field}"
    value_type = property_type(field, definitions)
    positive = NEGATIONS.get(operator)
    if positive is not None:
        return q.not_(_test(q, q.field(path), value_type, positive, node.get("value"), now))
    return _test(q, q.field(path), value_type, operator, node.get("value"), now)


def _test(
    q: Any, value: Any, value_type: str | None, operator: str, operand: Any, now: float
) -> Any:
    """A positive operator applied to the field expression `value`."""
    if operator == "is_empty":
        return q.or_(q.is_type(value, "undefined"), q.is_type(value, "null"), q.eq(value, ""))
    if operator in ("is_true", "is_false"):
        return q.eq(value, operator == "is_true")
    if value_type == "string":
        lowered, needle = q.lower(value), operand.lower()
        if operator == "equals":
            return q.eq(lowered, needle)
        if operator == "contains":
            return q.contains(lowered, needle)
        return q.starts_with(lowered, needle)
    if operator == "equals":
        return q.eq(value, operand)
    is_number = q.is_type(value, "number")
    if operator == "in_last":
        since = now - operand["amount"] * UNIT_MS[operand["unit"]]
        return q.and_(is_number, q.gte(value, since), q.lte(value, now))
    compare = {"gt": q.gt, "gte": q.gte, "lt": q.lt, "lte": q.lte, "before": q.lt, "after": q.gt}
    return q.and_(is_number, compare[operator](value, operand))
