"""Personalization: compile a rendered template once, then fill it in per recipient.

`compile_template` cuts each part (subject, HTML, text) into runs of text between the
conditional/repeated sections read from their markers; a run is its literal texts and the
placeholders between them. `personalize` resolves each run's distinct placeholders once for
one recipient and joins texts and values, so a send renders once and costs a few dictionary
look-ups and one join per run per recipient.

Rules (upstream §8.2, plus custom properties and per-recipient conditions):
- A value that is missing, null or "" gives the placeholder's fallback, or "" (the name is
  then listed in `Message.missing`). Numbers print without a trailing `.0`; booleans as
  true/false; lists and objects as JSON.
- HTML part: values are HTML-escaped; fallbacks are HTML source already (the renderer wrote
  them escaped) and go in as written. A placeholder that starts a `href`/`src` value must
  give an http(s), mailto: or tel: URL; any other value counts as missing.
- Text part: values and fallbacks go in unescaped.
- Subject: line breaks and other control characters become spaces (header-safe).
- A condition `{variable, operator, value}` compares the value's text: `equals`, `notEquals`,
  `contains` (a missing value equals nothing and contains nothing), `exists` / `notExists`
  (present and not ""). A repeat takes a list (or a JSON string of one), at most `maxItems`
  and never more than 500 entries; inside, `{{alias.key}}` reads the entry's field,
  `{{alias}}` the entry itself and `{{$index}}` its position from 0.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from owlat.app.lib.rendering.html import RenderedTemplate
from owlat.app.lib.rendering.variables import MARKER, TOKEN

MAX_REPEAT_ITEMS = 500
_SAFE_URL = re.compile(r"\s*(?:https?://[^/?#\s]|mailto:.|tel:.)", re.IGNORECASE)
_URL_ATTRIBUTES = ('href="', 'src="')
_HEADER_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]+")


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    fallback: str | None
    url: bool


@dataclass(frozen=True, slots=True)
class _Run:
    """Literal text with slots: `texts` around the fields (one more text than fields);
    field i holds `slots[fields[i]]` (a slot used twice is resolved once)."""

    texts: tuple[str, ...]
    fields: tuple[int, ...]
    slots: tuple[_Slot, ...]


@dataclass(frozen=True, slots=True)
class _If:
    rule: dict[str, Any]
    body: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Each:
    rule: dict[str, Any]
    body: tuple[_Node, ...]


_Node = Union[_Run, _If, _Each]  # noqa: UP007 (a runtime alias)
_Piece = Union[str, _Slot, _If, _Each]  # noqa: UP007


@dataclass(frozen=True)
class CompiledTemplate:
    """A rendered template cut into literals and slots, ready for `personalize`."""

    subject: tuple[_Node, ...]
    html: tuple[_Node, ...]
    text: tuple[_Node, ...]
    variables: tuple[str, ...]


@dataclass(frozen=True)
class Message:
    """One recipient's subject, HTML and text; `missing`: placeholders left empty (no value,
    no fallback), in order of first use."""

    subject: str
    html: str
    text: str
    missing: tuple[str, ...]


def compile_template(rendered: RenderedTemplate) -> CompiledTemplate:
    return CompiledTemplate(
        subject=_compile(rendered.subject, markers=False, html=False),
        html=_compile(rendered.html, markers=True, html=True),
        text=_compile(rendered.text, markers=True, html=False),
        variables=rendered.variables,
    )


def _compile(source: str, *, markers: bool, html: bool) -> tuple[_Node, ...]:
    """`source` as a tree of runs and sections. A marker whose JSON does not parse stays
    literal text, a stray closing marker too; an unclosed section ends with the part."""
    stack: list[tuple[str, dict[str, Any], list[_Piece]]] = [("", {}, [])]
    last = 0
    for match in MARKER.finditer(source) if markers else ():
        kind, encoded, closing = match.groups()
        if closing is None:
            try:
                rule = json.loads(encoded)
            except ValueError:
                continue
            if not isinstance(rule, dict):
                continue
        elif stack[-1][0] != closing.removeprefix("end"):
            continue
        _add_text(stack[-1][2], source[last : match.start()], html)
        last = match.end()
        if closing is None:
            stack.append((kind, rule, []))
        else:
            _close(stack)
    _add_text(stack[-1][2], source[last:], html)
    while len(stack) > 1:
        _close(stack)
    return _pack(stack[0][2])


def _close(stack: list[tuple[str, dict[str, Any], list[_Piece]]]) -> None:
    kind, rule, body = stack.pop()
    section = _If(rule, _pack(body)) if kind == "if" else _Each(rule, _pack(body))
    stack[-1][2].append(section)


def _add_text(out: list[_Piece], text: str, html: bool) -> None:
    last = 0
    for match in TOKEN.finditer(text):
        out.append(text[last : match.start()])
        url = html and text[: match.start()].endswith(_URL_ATTRIBUTES)
        out.append(_Slot(match.group(1), match.group(2), url))
        last = match.end()
    out.append(text[last:])


def _pack(pieces: list[_Piece]) -> tuple[_Node, ...]:
    """Consecutive literals and slots as one `_Run` each."""
    nodes: list[_Node] = []
    texts: list[str] = [""]
    fields: list[int] = []
    slots: dict[_Slot, int] = {}

    def flush() -> None:
        if fields or texts[0]:
            nodes.append(_Run(tuple(texts), tuple(fields), tuple(slots)))
        texts[:] = [""]
        fields.clear()
        slots.clear()

    for piece in pieces:
        if isinstance(piece, str):
            texts[-1] += piece
        elif isinstance(piece, _Slot):
            fields.append(slots.setdefault(piece, len(slots)))
            texts.append("")
        else:
            flush()
            nodes.append(piece)
    flush()
    return tuple(nodes)


def as_text(value: Any) -> str | None:
    """A variable's text, or None when it counts as missing (None or "")."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def _escape_html(value: str) -> str:
    return html.escape(value)


def _escape_none(value: str) -> str:
    return value


def _escape_header(value: str) -> str:
    return _HEADER_UNSAFE.sub(" ", value)


class _Filler:
    """Fills one part for one recipient."""

    __slots__ = ("escape", "missing", "variables")

    def __init__(
        self, variables: Mapping[str, Any], escape: Callable[[str], str], missing: list[str]
    ) -> None:
        self.variables, self.escape, self.missing = variables, escape, missing

    def lookup(self, name: str, local: Mapping[str, Any] | None) -> Any:
        if local:
            if name in local:
                return local[name]
            head, dot, key = name.partition(".")
            if dot and head in local:
                item = local[head]
                return item.get(key) if isinstance(item, dict) else None
        return self.variables.get(name)

    def slot(self, slot: _Slot, local: Mapping[str, Any] | None) -> str:
        value = as_text(self.lookup(slot.name, local))
        if value is not None and slot.url and not _SAFE_URL.match(value):
            value = None
        if value is not None:
            return self.escape(value)
        if slot.fallback is not None:
            return slot.fallback if self.escape is _escape_html else self.escape(slot.fallback)
        if slot.name not in self.missing:
            self.missing.append(slot.name)
        return ""

    def fill(self, nodes: Iterable[_Node], out: list[str], local: Mapping[str, Any] | None) -> None:
        for node in nodes:
            if type(node) is _Run:
                if not node.fields:
                    out.append(node.texts[0])
                    continue
                values = [self.slot(s, local) for s in node.slots]
                pieces: list[str] = [""] * (2 * len(node.fields) + 1)
                pieces[0::2] = node.texts
                pieces[1::2] = [values[i] for i in node.fields]
                out.append("".join(pieces))
            elif type(node) is _If:
                if self.holds(node.rule, local):
                    self.fill(node.body, out, local)
            elif type(node) is _Each:
                self.repeat(node, out, local)

    def holds(self, rule: dict[str, Any], local: Mapping[str, Any] | None) -> bool:
        value = as_text(self.lookup(str(rule.get("variable")), local))
        operator, expected = rule.get("operator"), str(rule.get("value", ""))
        if operator == "exists":
            return value is not None
        if operator == "notExists":
            return value is None
        if operator == "equals":
            return value == expected
        if operator == "notEquals":
            return value != expected
        return operator == "contains" and value is not None and expected in value

    def repeat(self, node: _Each, out: list[str], local: Mapping[str, Any] | None) -> None:
        items = self.lookup(str(node.rule.get("variable")), local)
        if isinstance(items, str):
            try:
                items = json.loads(items)
            except ValueError:
                return
        if not isinstance(items, list):
            return
        limit = min(int(node.rule.get("maxItems") or MAX_REPEAT_ITEMS), MAX_REPEAT_ITEMS)
        alias = str(node.rule.get("itemAlias"))
        for index, item in enumerate(items[:limit]):
            self.fill(node.body, out, {**(local or {}), alias: item, "$index": index})


def personalize(compiled: CompiledTemplate, variables: Mapping[str, Any]) -> Message:
    """One recipient's message from `variables` (contact fields, custom properties, send data)."""
    missing: list[str] = []
    parts = []
    for nodes, escape in (
        (compiled.subject, _escape_header),
        (compiled.html, _escape_html),
        (compiled.text, _escape_none),
    ):
        out: list[str] = []
        _Filler(variables, escape, missing).fill(nodes, out, None)
        parts.append("".join(out))
    return Message(parts[0], parts[1], parts[2], tuple(missing))


def contact_variables(
    contact: Mapping[str, Any], *, date_keys: Iterable[str] = ()
) -> dict[str, Any]:
    """A contact's variables: `email`, `firstName`, `lastName` and every custom property by
    its key (properties in `date_keys`, stored as epoch milliseconds, as YYYY-MM-DD in UTC)."""
    variables: dict[str, Any] = dict(contact.get("properties") or {})
    for key in date_keys:
        value = variables.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            variables[key] = dt.datetime.fromtimestamp(value / 1000, dt.UTC).date().isoformat()
    for key in ("email", "firstName", "lastName"):
        if contact.get(key) is not None:
            variables[key] = contact[key]
    return variables
