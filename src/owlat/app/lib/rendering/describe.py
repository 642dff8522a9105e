"""The block schema (`_schema.py`) as plain data, for the dashboard's block editor.

`describe_schema()` answers each block type's own fields, the fields every block shares
(`COMMON`), which types may go where (columns, containers) and where a type keeps its
child blocks, so the editor draws its inputs from the schema the server checks against
rather than from a copy of it. A field is `{name, kind, required, ...}`; kinds: text, html,
ident, name, number (low, high, integer), flag, choice (choices), color, pattern (hint),
url (image: http(s) only), srcset, record (fields), items (item, minItems, maxItems).
"""

from __future__ import annotations

from typing import Any

from owlat.app.lib.rendering._fields import (
    IMAGE_SCHEMES,
    Choice,
    Color,
    Field,
    Flag,
    Html,
    Ident,
    Items,
    Name,
    Number,
    Record,
    SrcSet,
    Text,
    Url,
    _Pattern,
)
from owlat.app.lib.rendering._schema import (
    BLOCK_TYPES,
    COLUMN_ITEM_TYPES,
    COMMON,
    CONTAINER_ITEM_TYPES,
    FIELDS,
)
from owlat.app.lib.rendering.blocks import CHILD_FIELDS


def describe_field(field: Field) -> dict[str, Any]:
    """One field kind as data (see the module docstring)."""
    out: dict[str, Any] = {"required": field.required}
    if isinstance(field, Html):
        out.update(kind="html", maxChars=field.max_chars)
    elif isinstance(field, Text):
        out.update(kind="text", maxChars=field.max_chars)
    elif isinstance(field, Number):
        out.update(kind="number", low=field.low, high=field.high, integer=field.integer)
    elif isinstance(field, Flag):
        out.update(kind="flag")
    elif isinstance(field, Choice):
        out.update(kind="choice", choices=list(field.values))
    elif isinstance(field, Color):
        out.update(kind="color")
    elif isinstance(field, _Pattern):
        out.update(kind="pattern", hint=field.what)
    elif isinstance(field, Url):
        out.update(kind="url", image=field.schemes == IMAGE_SCHEMES)
    elif isinstance(field, SrcSet):
        out.update(kind="srcset")
    elif isinstance(field, Record):
        out.update(kind="record", fields=describe_fields(field.fields))
    elif isinstance(field, Items):
        out.update(
            kind="items",
            item=describe_field(field.kind),
            minItems=field.min_items,
            maxItems=field.max_items,
        )
    elif isinstance(field, Name):
        out.update(kind="name")
    elif isinstance(field, Ident):
        out.update(kind="ident")
    else:  # a new kind: the editor shows it as JSON
        out.update(kind="json")
    return out


def describe_fields(fields: dict[str, Field]) -> list[dict[str, Any]]:
    return [{"name": name, **describe_field(field)} for name, field in fields.items()]


def describe_schema() -> dict[str, Any]:
    """Every block type's fields and nesting rules (see the module docstring)."""
    return {
        "types": [
            {
                "type": kind,
                "fields": describe_fields(FIELDS[kind]),
                "children": CHILD_FIELDS.get(kind),
            }
            for kind in BLOCK_TYPES
        ],
        "common": describe_fields(COMMON),
        "columnItemTypes": list(COLUMN_ITEM_TYPES),
        "containerItemTypes": list(CONTAINER_ITEM_TYPES),
    }
