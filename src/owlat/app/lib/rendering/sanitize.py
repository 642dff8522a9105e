"""The sanitizer of author HTML (text, rawHtml, table cells, list items): nh3 with an
allowlist suited to email.

Kept: text formatting, links, images, lists and tables, with presentational attributes and
a `style` attribute limited to typographic and box properties (no `background-image`,
`position`, `behavior`, …) whose values hold no `url(`, `expression`, escapes, comments or
placeholders. Dropped: every other tag (`<script>`, `<style>`, `<iframe>`, `<form>`, `<svg>`,
… with their content), event handlers, `id`, comments (so author HTML cannot forge the
conditional-block markers), and any `href`/`src` that is not http(s), mailto: or tel:
(images: http(s)) unless it starts with a placeholder, which the personalizer checks at send
time.
"""

from __future__ import annotations

import re

import nh3

from owlat.app.lib.rendering.variables import TOKEN

_TAGS = {
    *("a", "abbr", "b", "blockquote", "br", "caption", "code", "del", "div", "em"),
    *("figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins"),
    *("li", "mark", "ol", "p", "pre", "s", "small", "span", "strike", "strong", "sub", "sup"),
    *("table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul"),
}
_CLEAN_CONTENT = {
    *("script", "style", "template", "textarea", "title", "noscript", "iframe"),
    *("object", "embed", "svg", "math", "select", "option", "head"),
}
_CELL = {"colspan", "rowspan", "width", "height", "valign", "bgcolor"}
_ATTRIBUTES = {
    "*": {"style", "class", "dir", "lang", "title", "align"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": _CELL,
    "th": _CELL,
    "table": {"width", "cellpadding", "cellspacing", "border", "bgcolor", "role"},
    "ol": {"start", "type"},
}
_STYLE_PROPERTIES = {
    *("color", "background-color", "font", "font-family", "font-size", "font-style"),
    *("font-weight", "line-height", "letter-spacing", "text-align", "text-decoration"),
    *("text-transform", "text-indent", "vertical-align", "white-space", "word-break"),
    *("word-wrap", "overflow-wrap", "direction", "display", "list-style-type"),
    *("width", "max-width", "min-width", "height", "max-height", "min-height"),
    *("padding", "padding-top", "padding-right", "padding-bottom", "padding-left"),
    *("margin", "margin-top", "margin-right", "margin-bottom", "margin-left"),
    *("border", "border-top", "border-right", "border-bottom", "border-left"),
    *("border-color", "border-style", "border-width", "border-radius", "border-collapse"),
    "mso-line-height-rule",
}
_UNSAFE_STYLE_VALUE = re.compile(r"expression|url\s*\(|script:|[\\<>@]|/\*|\{\{", re.IGNORECASE)
_LINK = re.compile(r"(?:https?://[^/?#\s]|mailto:.|tel:.)", re.IGNORECASE)
_IMAGE = re.compile(r"https?://[^/?#\s]", re.IGNORECASE)


def _style(value: str) -> str | None:
    kept = []
    for declaration in value.split(";"):
        name, colon, setting = declaration.partition(":")
        name = name.strip().lower()
        if colon and name in _STYLE_PROPERTIES and not _UNSAFE_STYLE_VALUE.search(setting):
            kept.append(f"{name}:{setting.strip()}")
    return ";".join(kept) or None


def _filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "style":
        return _style(value)
    if attribute not in ("href", "src"):
        return value
    if TOKEN.match(value):
        return value
    allowed = _IMAGE if attribute == "src" else _LINK
    return value if allowed.match(value.strip()) else None


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_CLEAN_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_filter,
    tag_attribute_values={"a": {"target": {"_blank", "_self"}}},
    url_schemes={"http", "https", "mailto", "tel"},
    filter_style_properties=_STYLE_PROPERTIES,
    strip_comments=True,
)


def sanitize_html(html: str) -> str:
    """`html` with only the allowlisted tags, attributes, styles and URLs left."""
    return _CLEANER.clean(html)
