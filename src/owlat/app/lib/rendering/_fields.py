"""Field kinds of the block schema: each checks one JSON value at a path and returns it.

A kind raises `InvalidContent(path, reason)` on the first problem. Strings that may hold
placeholders are checked against the placeholder grammar; URLs are limited to http(s),
mailto: and tel: (images: http(s)), optionally starting with a placeholder whose value the
personalizer checks again at send time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from owlat.app.lib.rendering.errors import InvalidContent
from owlat.app.lib.rendering.variables import TOKEN, malformed_placeholder

MAX_URL = 2000
LINK_SCHEMES = ("http", "https", "mailto", "tel")
IMAGE_SCHEMES = ("http", "https")
_COLOR = re.compile(
    r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})"
    r"|(?:rgba?|hsla?)\(\s*-?[0-9.]+%?(?:\s*[,\s/]\s*-?[0-9.]+%?){2,3}\s*\)"
    r"|[a-zA-Z]{3,20}"
)
_FONT = re.compile(r"[A-Za-z0-9 ,\"'_-]{1,200}")
_LENGTH = re.compile(r"\d{1,4}(?:\.\d{1,3})?(?:px|%)|auto")
_CLASSES = re.compile(r"-?[A-Za-z_][\w-]{0,63}(?: -?[A-Za-z_][\w-]{0,63}){0,9}")
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_DIRECTION = re.compile(r"to (?:top|bottom|left|right)(?: (?:top|bottom|left|right))?|-?\d{1,3}deg")
_SIZES = re.compile(r"[\w\s(),:.%-]{1,500}")
_SRCSET_DESCRIPTOR = re.compile(r"\d{1,5}(?:\.\d{1,3})?[wx]")
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>\"\\`]")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


class Field:
    """A value kind; `required` fields must be present."""

    required: bool = False

    def check(self, value: Any, path: str) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Text(Field):
    """A plain string (HTML-escaped when rendered) that may hold placeholders."""

    max_chars: int = 5_000
    required: bool = False

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise InvalidContent(path, f"must be a string, not {_type_name(value)}")
        if len(value) > self.max_chars:
            raise InvalidContent(
                path, f"{len(value):,} characters, over the limit of {self.max_chars:,}"
            )
        bad = malformed_placeholder(value)
        if bad is not None:
            raise InvalidContent(
                path,
                f"malformed placeholder {bad[:80]}: write {{{{name}}}} or {{{{name|'fallback'}}}}"
                " (letters, digits and _; a fallback cannot contain ')",
            )
        return value


@dataclass(frozen=True)
class Html(Text):
    """HTML source, sanitized when rendered (placeholders as in `Text`)."""

    max_chars: int = 50_000


@dataclass(frozen=True)
class Ident(Field):
    """An identifier (block ids, storage ids): a non-empty string of at most 200 chars."""

    required: bool = False

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value or len(value) > 200:
            raise InvalidContent(path, "must be a non-empty string of at most 200 characters")
        return value


@dataclass(frozen=True)
class Name(Field):
    """A variable name: letters, digits and underscores (`dotted` allows `alias.key`)."""

    dotted: bool = False
    required: bool = True

    def check(self, value: Any, path: str) -> str:
        parts = value.split(".") if isinstance(value, str) else [None]
        if len(parts) > (2 if self.dotted else 1) or not all(
            isinstance(p, str) and _NAME.fullmatch(p) for p in parts
        ):
            raise InvalidContent(path, "must be a variable name (letters, digits and _)")
        return str(value)


@dataclass(frozen=True)
class Number(Field):
    """A finite number in [low, high] (`integer`: a whole number)."""

    low: float = 0
    high: float = 1_000
    integer: bool = False
    required: bool = False

    def check(self, value: Any, path: str) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidContent(path, f"must be a number, not {_type_name(value)}")
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise InvalidContent(path, f"must be between {self.low:g} and {self.high:g}")
        if self.integer and value != int(value):
            raise InvalidContent(path, "must be a whole number")
        return int(value) if self.integer else value


@dataclass(frozen=True)
class Flag(Field):
    def check(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise InvalidContent(path, f"must be true or false, not {_type_name(value)}")
        return value


class Choice(Field):
    """One of a fixed set of strings."""

    def __init__(self, *values: str, required: bool = False) -> None:
        self.values = values
        self.required = required

    def check(self, value: Any, path: str) -> str:
        if value not in self.values:
            shown = repr(value)[:60]
            raise InvalidContent(path, f"must be one of {', '.join(self.values)}, not {shown}")
        return str(value)


class _Pattern(Field):
    pattern: re.Pattern[str]
    what: str

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not (value == "" or self.pattern.fullmatch(value)):
            raise InvalidContent(path, f"must be {self.what}, not {repr(value)[:60]}")
        return value


class Color(_Pattern):
    pattern = _COLOR
    what = "a CSS colour (#rrggbb, rgb(…), a colour name) or empty"


class Font(_Pattern):
    pattern = _FONT
    what = "a font stack (letters, digits, spaces, commas, quotes, - and _)"


class Length(_Pattern):
    pattern = _LENGTH
    what = "a length in px or % (e.g. 200px, 50%)"


class Classes(_Pattern):
    pattern = _CLASSES
    what = "up to 10 CSS class names separated by spaces"


class Sizes(_Pattern):
    pattern = _SIZES
    what = "an image sizes list"


@dataclass(frozen=True)
class Url(Field):
    """A URL with one of `schemes` (empty allowed unless required). With `placeholders`, it
    may hold placeholders, and may start with one: its value (or fallback) must then be such
    a URL itself, which the personalizer checks for each recipient."""

    schemes: tuple[str, ...] = LINK_SCHEMES
    placeholders: bool = True
    required: bool = False

    @property
    def what(self) -> str:
        return (
            "an http(s), mailto: or tel: URL" if self.schemes == LINK_SCHEMES else "an http(s) URL"
        )

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise InvalidContent(path, f"must be {self.what}, not {_type_name(value)}")
        if value == "":
            if self.required:
                raise InvalidContent(path, f"must be {self.what}")
            return value
        if len(value) > MAX_URL:
            raise InvalidContent(path, f"must be at most {MAX_URL} characters")
        if _URL_FORBIDDEN.search(TOKEN.sub("x", value)):
            raise InvalidContent(
                path, "must not contain spaces, quotes, <, > or control characters"
            )
        if "{{" in value:
            if not self.placeholders:
                raise InvalidContent(path, f"must be {self.what} without placeholders")
            Text(MAX_URL).check(value, path)
            first = TOKEN.match(value)
            if first is not None:
                if first.group(2):
                    Url(self.schemes, placeholders=False).check(first.group(2), path + " fallback")
                return value
        if not self._valid(TOKEN.sub("x", value)):
            raise InvalidContent(path, f"must be {self.what}")
        return value

    def _valid(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        if parts.scheme.lower() not in self.schemes:
            return False
        if parts.scheme.lower() in ("http", "https"):
            return bool(parts.hostname)
        return bool(parts.path)


@dataclass(frozen=True)
class SrcSet(Field):
    """An image srcset: `url [descriptor]` candidates separated by commas; http(s) only."""

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or len(value) > MAX_URL * 4:
            raise InvalidContent(path, "must be a srcset string")
        image = Url(IMAGE_SCHEMES, placeholders=False)
        for candidate in filter(None, (c.strip() for c in value.split(","))):
            url, _, descriptor = candidate.partition(" ")
            image.check(url, path)
            if descriptor.strip() and not _SRCSET_DESCRIPTOR.fullmatch(descriptor.strip()):
                raise InvalidContent(path, f"bad srcset descriptor {descriptor.strip()[:20]!r}")
        return value


class Record(Field):
    """An object with known fields (an unknown field is an error)."""

    def __init__(self, fields: dict[str, Field], *, required: bool = False) -> None:
        self.fields = fields
        self.required = required

    def check(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InvalidContent(path, f"must be an object, not {_type_name(value)}")
        return check_fields(self.fields, value, path)


class Items(Field):
    """An array of at most `max_items` values of one kind (`min_items` at least)."""

    def __init__(
        self, kind: Field, *, max_items: int = 100, min_items: int = 0, required: bool = False
    ) -> None:
        self.kind, self.max_items, self.min_items = kind, max_items, min_items
        self.required = required

    def check(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise InvalidContent(path, f"must be an array, not {_type_name(value)}")
        if len(value) > self.max_items:
            raise InvalidContent(path, f"{len(value)} entries, over the limit of {self.max_items}")
        if len(value) < self.min_items:
            raise InvalidContent(path, f"needs at least {self.min_items} entries")
        return [self.kind.check(item, f"{path}[{i}]") for i, item in enumerate(value)]


class Gradient(Record):
    def __init__(self) -> None:
        super().__init__(
            {
                "direction": _Direction(),
                "stops": Items(
                    Record({"color": Color(), "position": Number(0, 100)}),
                    min_items=2,
                    max_items=10,
                    required=True,
                ),
            }
        )


class _Direction(_Pattern):
    pattern = _DIRECTION
    what = "a gradient direction (to right, 135deg, …)"
    required = True


class Condition(Record):
    """`{variable, operator, value?}`; equals, notEquals and contains need a value."""

    def __init__(self) -> None:
        super().__init__(
            {
                "variable": Name(dotted=True),
                "operator": Choice(
                    "equals", "notEquals", "contains", "exists", "notExists", required=True
                ),
                "value": Text(1_000),
            }
        )

    def check(self, value: Any, path: str) -> dict[str, Any]:
        rule = super().check(value, path)
        if rule["operator"] in ("equals", "notEquals", "contains") and "value" not in rule:
            raise InvalidContent(f"{path}.value", f"is required by the {rule['operator']} operator")
        return rule


class Repeat(Record):
    """`{variable, itemAlias, maxItems?}`."""

    def __init__(self) -> None:
        super().__init__(
            {
                "variable": Name(),
                "itemAlias": Name(),
                "maxItems": Number(1, 500, integer=True),
            }
        )


def check_fields(fields: dict[str, Field], value: dict[str, Any], path: str) -> dict[str, Any]:
    """`value`'s fields checked against `fields`: unknown ones refused, required ones present.
    A null optional field counts as absent."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        kind = fields.get(key)
        if kind is None:
            raise InvalidContent(f"{path}.{key}", "unknown field")
        if item is None and not kind.required:
            continue
        out[key] = kind.check(item, f"{path}.{key}")
    for key, kind in fields.items():
        if kind.required and key not in out:
            raise InvalidContent(f"{path}.{key}", "is required")
    return out
