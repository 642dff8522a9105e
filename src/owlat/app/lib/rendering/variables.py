"""The placeholder grammar shared by validation, rendering and personalization.

A placeholder is `{{name}}` or `{{name|'fallback'}}` (upstream's send-time pattern); inside a
repeated block `{{alias.key}}` names a field of the current item and `{{$index}}` its position.
Names are ASCII letters, digits and underscores. A fallback cannot contain `'`.

Rendered HTML keeps placeholders literally; a fallback there is HTML source (already escaped),
so the personalizer inserts it as written and HTML-escapes only the values. Blocks that hold
HTML write their placeholders as HTML already; plain-text fields go through `escape`, which
escapes the text around and inside placeholders without breaking their delimiters.

Conditional and repeated blocks are bracketed by marker comments that carry their rule as
JSON (`<!--owlat:if {...}-->` … `<!--owlat:endif-->`, `<!--owlat:each {...}-->` …
`<!--owlat:endeach-->`); the same markers bracket their lines in the text part. User HTML
cannot forge them: the sanitizer drops every comment.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

NAME = r"[A-Za-z0-9_]+"
TOKEN = re.compile(r"\{\{(\$index|" + NAME + r"(?:\." + NAME + r")?)(?:\|'([^']*)')?\}\}")
_BRACES = re.compile(r"\{\{.*?\}\}", re.DOTALL)
MARKER = re.compile(r"<!--owlat:(if|each) (\{.*?\})-->|<!--owlat:(endif|endeach)-->", re.DOTALL)
_MARKER_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def malformed_placeholder(text: str) -> str | None:
    """The first `{{…}}` in `text` that is not a valid placeholder, or None."""
    for match in _BRACES.finditer(text):
        if not TOKEN.fullmatch(match.group(0)):
            return match.group(0)
    return None


def placeholders(text: str) -> list[tuple[str, str | None]]:
    """(name, fallback) of each placeholder in `text`, in order."""
    return [(m.group(1), m.group(2)) for m in TOKEN.finditer(text)]


def escape(text: str) -> str:
    """`text` HTML-escaped (quotes too), its placeholders kept intact with escaped fallbacks."""
    out: list[str] = []
    last = 0
    for match in TOKEN.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        name, fallback = match.group(1), match.group(2)
        out.append(
            "{{" + name + "}}"
            if fallback is None
            else "{{" + name + "|'" + html.escape(fallback, quote=False) + "'}}"
        )
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def unescape(text: str) -> str:
    """HTML source (placeholders included) back to plain text."""
    return html.unescape(text)


def marker(kind: str, rule: dict[str, Any]) -> tuple[str, str]:
    """The opening and closing marker comments of a conditional (`if`) or repeated (`each`)
    block; the rule's JSON cannot end the comment (`<`, `>` and `&` are escaped)."""
    encoded = json.dumps(rule, separators=(",", ":"), sort_keys=True).translate(_MARKER_ESCAPES)
    return f"<!--owlat:{kind} {encoded}-->", f"<!--owlat:end{kind}-->"
