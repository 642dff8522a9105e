"""The block model (`content` = upstream's `EditorBlock[]`, §8.1) and its validation on save.

`validate_content(content)` takes the JSON string (or the parsed list) and returns `Block`s,
or raises `InvalidContent` naming the first bad value by its path, as the editor addresses it:
`content[3].columns[1][0].url: must be an http(s), mailto: or tel: URL` (a block's content
fields hang directly off the block's path). Limits: the JSON at most `MAX_CONTENT_CHARS`
characters (anything over 16 MB is refused unread), at most `MAX_BLOCKS` blocks counting
nested ones, nesting at most `MAX_DEPTH` levels, a rawHtml block at most
`MAX_RAW_HTML_CHARS`. Unknown block types and unknown fields are errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from owlat.app.lib.rendering._fields import Ident, Text, check_fields
from owlat.app.lib.rendering._schema import (
    BLOCK_TYPES,
    COLUMN_ITEM_TYPES,
    CONTAINER_ITEM_TYPES,
    MAX_RAW_HTML_CHARS,
    SAVED_BLOCK_REF,
    SCHEMAS,
)
from owlat.app.lib.rendering.errors import InvalidContent

__all__ = [
    "MAX_BLOCKS",
    "MAX_CONTENT_CHARS",
    "MAX_DEPTH",
    "MAX_RAW_HTML_CHARS",
    "Block",
    "Props",
    "Section",
    "validate_content",
]

MAX_CONTENT_CHARS = 500_000
MAX_BLOCKS = 500
MAX_DEPTH = 5
_UNREAD_CHARS = 16_000_000
_BLOCK_KEYS = frozenset({"id", "type", "content", "savedBlockRef"})
CHILD_FIELDS = {  # where a block type keeps its child blocks
    "columns": "columns",
    "container": "items",
    "hero": "items",
    "accordion": "sections",
}
_DARK_ALIASES = {
    "darkBackgroundColor": "backgroundColor",
    "darkTextColor": "textColor",
    "darkSrc": "src",
}


class Props:
    """A block's validated content fields with typed reads; "" and absent mean the default."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __contains__(self, key: str) -> bool:
        return self.data.get(key) not in (None, "")

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key)
        return value if isinstance(value, str) and value else default

    def num(self, key: str, default: float) -> float:
        value = self.data.get(key)
        return float(value) if isinstance(value, int | float) else default

    def flag(self, key: str) -> bool:
        return self.data.get(key) is True

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def dark(self, key: str) -> str:
        """A `darkMode` override (backgroundColor, textColor, borderColor, linkColor, src)."""
        value = self.data.get("darkMode", {}).get(key)
        return value if isinstance(value, str) else ""


def fold_dark_mode(fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` with the flat dark fields (`darkBackgroundColor`, `darkTextColor`, `darkSrc`)
    and `darkMode.color` as `darkMode` keys: one shape for the renderer. A key of the
    `darkMode` object wins over its flat twin."""
    dark = {key: fields.pop(flat) for flat, key in _DARK_ALIASES.items() if flat in fields}
    dark.update(fields.pop("darkMode", {}))
    color = dark.pop("color", None)
    if color is not None:
        dark.setdefault("textColor", color)
    if dark:
        fields["darkMode"] = dark
    return fields


@dataclass(frozen=True, slots=True)
class Section:
    """An accordion section: a title over its blocks."""

    id: str
    title: str
    items: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class Block:
    """One validated block; children per type: `items` (container, hero), `columns`
    (columns: one tuple of blocks per column), `sections` (accordion)."""

    id: str
    type: str
    props: Props
    items: tuple[Block, ...] = ()
    columns: tuple[tuple[Block, ...], ...] = ()
    sections: tuple[Section, ...] = ()
    saved_block: dict[str, Any] | None = field(default=None, compare=False)

    def walk(self) -> Iterator[Block]:
        """This block and every block nested in it, depth first."""
        yield self
        children = [*self.items, *(b for column in self.columns for b in column)]
        children += [b for section in self.sections for b in section.items]
        for child in children:
            yield from child.walk()


def validate_content(content: str | list[Any]) -> list[Block]:
    """The blocks of `content` (a JSON string or its parsed list), or `InvalidContent`."""
    if isinstance(content, str):
        if len(content) > _UNREAD_CHARS:
            raise _too_large(len(content))
        try:
            parsed = json.loads(content)
        except ValueError as error:
            raise InvalidContent("content", f"is not valid JSON ({error})") from None
    else:
        parsed = content
    if not isinstance(parsed, list):
        raise InvalidContent("content", "must be an array of blocks")
    walker = _Walker()
    blocks = [walker.block(raw, f"content[{i}]", BLOCK_TYPES, 1) for i, raw in enumerate(parsed)]
    size = len(content) if isinstance(content, str) else len(json.dumps(parsed))
    if size > MAX_CONTENT_CHARS:
        raise _too_large(size)
    return blocks


def _too_large(size: int) -> InvalidContent:
    return InvalidContent(
        "content", f"{size:,} characters of JSON, over the limit of {MAX_CONTENT_CHARS:,}"
    )


class _Walker:
    """Checks blocks depth first, counting them against `MAX_BLOCKS`."""

    def __init__(self) -> None:
        self.count = 0

    def block(self, raw: Any, path: str, allowed: tuple[str, ...], depth: int) -> Block:
        if not isinstance(raw, dict):
            raise InvalidContent(path, "must be a block object {id, type, content}")
        self.count += 1
        if self.count > MAX_BLOCKS:
            raise InvalidContent(path, f"a template holds at most {MAX_BLOCKS} blocks")
        if depth > MAX_DEPTH:
            raise InvalidContent(path, f"blocks nest at most {MAX_DEPTH} levels deep")
        for key in raw:
            if key not in _BLOCK_KEYS:
                raise InvalidContent(f"{path}.{key}", "unknown field of a block")
        block_id = Ident(required=True).check(raw.get("id"), f"{path}.id")
        kind = raw.get("type")
        if kind not in BLOCK_TYPES:
            raise InvalidContent(
                f"{path}.type",
                f"unknown block type {str(kind)[:40]!r} (one of {', '.join(BLOCK_TYPES)})",
            )
        if kind not in allowed:
            raise InvalidContent(
                f"{path}.type", f"a {kind} block cannot go here (only {', '.join(allowed)})"
            )
        content = raw.get("content")
        if not isinstance(content, dict):
            raise InvalidContent(f"{path}.content", "must be an object")
        saved = raw.get("savedBlockRef")
        if saved is not None:
            saved = SAVED_BLOCK_REF.check(saved, f"{path}.savedBlockRef")
        child_key = CHILD_FIELDS.get(kind)
        own = {k: v for k, v in content.items() if k != child_key}
        props = Props(fold_dark_mode(check_fields(SCHEMAS[kind], own, path)))
        block = Block(block_id, kind, props, saved_block=saved)
        if child_key is None:
            return block
        children = content.get(child_key)
        child_path = f"{path}.{child_key}"
        if kind == "columns":
            return replace(block, columns=self.columns(children, child_path, props, depth))
        if kind == "accordion":
            return replace(block, sections=self.sections(children, child_path, depth))
        items = self.items(children, child_path, CONTAINER_ITEM_TYPES, depth, kind == "container")
        return replace(block, items=items)

    def items(
        self, raw: Any, path: str, allowed: tuple[str, ...], depth: int, required: bool = True
    ) -> tuple[Block, ...]:
        if raw is None and not required:
            return ()
        if not isinstance(raw, list):
            raise InvalidContent(path, "must be an array of blocks")
        return tuple(self.block(b, f"{path}[{i}]", allowed, depth + 1) for i, b in enumerate(raw))

    def columns(
        self, raw: Any, path: str, props: Props, depth: int
    ) -> tuple[tuple[Block, ...], ...]:
        if not isinstance(raw, list) or not 1 <= len(raw) <= 4:
            raise InvalidContent(path, "must be an array of 1 to 4 columns (arrays of blocks)")
        count = props.get("columnCount")
        if count is not None and count != len(raw):
            raise InvalidContent(path, f"has {len(raw)} columns but columnCount is {count}")
        return tuple(
            self.items(column, f"{path}[{i}]", COLUMN_ITEM_TYPES, depth)
            for i, column in enumerate(raw)
        )

    def sections(self, raw: Any, path: str, depth: int) -> tuple[Section, ...]:
        if not isinstance(raw, list) or len(raw) > 50:
            raise InvalidContent(path, "must be an array of at most 50 sections")
        sections = []
        for i, section in enumerate(raw):
            at = f"{path}[{i}]"
            if not isinstance(section, dict):
                raise InvalidContent(at, "must be a section object {id, title, items}")
            for key in section:
                if key not in ("id", "title", "items"):
                    raise InvalidContent(f"{at}.{key}", "unknown field of a section")
            sections.append(
                Section(
                    Ident(required=True).check(section.get("id"), f"{at}.id"),
                    Text(500).check(section.get("title", ""), f"{at}.title"),
                    self.items(section.get("items"), f"{at}.items", CONTAINER_ITEM_TYPES, depth),
                )
            )
        return tuple(sections)
