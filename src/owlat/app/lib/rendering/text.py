"""The plain-text part: each block as readable text, links as `text (url)`, buttons as
`[text] url` (upstream's form), headings underlined, lists and tables kept as lines.

Placeholders stay literal (fallbacks unescaped: the text part is never HTML-escaped), and
conditional/repeated blocks keep their markers so the text follows the same rules as the
HTML for each recipient.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from owlat.app.lib.rendering._schema import SOCIAL_PLATFORMS
from owlat.app.lib.rendering.blocks import Block
from owlat.app.lib.rendering.sanitize import sanitize_html
from owlat.app.lib.rendering.variables import marker

_BLOCK_TAGS = frozenset(
    {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "tr", "blockquote"}
    | {"pre", "figure", "figcaption", "caption", "thead", "tbody", "tfoot", "hr"}
)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_UNDERLINE = {"h1": "=", "h2": "-", "h3": "-"}


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.links: list[str | None] = []
        self.link_start: list[int] = []
        self.cells = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.out.append("\n")
        if tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag == "tr":
            self.cells = 0
        elif tag in ("td", "th"):
            if self.cells:
                self.out.append(" | ")
            self.cells += 1
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))
            self.link_start.append(len(self.out))

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self.out.append("\n")
        if tag == "a" and self.links:
            href, start = self.links.pop(), self.link_start.pop()
            label = "".join(self.out[start:]).strip()
            if href and href != label and href.removeprefix("mailto:") != label:
                self.out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        self.out.append(_SPACES.sub(" ", data.replace("\n", " ")))


def html_to_text(html: str) -> str:
    """Readable text of an HTML fragment, sanitized first (entities decoded, links kept as
    `text (url)`)."""
    if "<" not in html and "&" not in html:
        return _SPACES.sub(" ", html.replace("\n", " ")).strip()
    parser = _TextParser()
    parser.feed(sanitize_html(html))
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _block_text(block: Block) -> str:
    p = block.props
    kind = block.type
    if kind == "text":
        text = html_to_text(p.text("html"))
        rule = _UNDERLINE.get(p.text("blockType"))
        return f"{text}\n{rule * min(len(text), 60)}" if rule and text else text
    if kind == "rawHtml":
        return html_to_text(p.text("html"))
    if kind == "button":
        return f"[{p.text('text')}] {p.text('url')}"
    if kind == "video":
        return f"[{p.text('alt', 'Video')}] {p.text('videoUrl')}"
    if kind == "image":
        link = p.text("linkUrl")
        return f"{p.text('alt')} ({link})".strip() if link else ""
    if kind == "divider":
        return "-" * 30
    if kind == "social":
        links = [x for x in p.get("links") or [] if x.get("enabled") is not False]
        return "\n".join(f"{SOCIAL_PLATFORMS[x['platform']]}: {x['url']}" for x in links)
    if kind == "menu":
        return "\n".join(f"{x['label']}: {x['url']}" for x in p.get("items") or [])
    if kind == "carousel":
        return "\n".join(
            f"{x.get('alt', '')} ({x['linkUrl']})".strip()
            for x in p.get("images") or []
            if x.get("linkUrl")
        )
    if kind == "list":
        items = [html_to_text(item) for item in p.get("items") or []]
        kind_of_list = p.text("listType", "bullet")
        marks = [f"{i + 1}." if kind_of_list == "numbered" else "-" for i in range(len(items))]
        return "\n".join(f"{m} {item}" for m, item in zip(marks, items, strict=True))
    if kind == "table":
        return _table_text(block)
    if kind == "progressBar":
        percent = round(p.num("value", 0) / p.num("maxValue", 100) * 100)
        return f"{max(0, min(100, percent))}%" if p.flag("showLabel") else ""
    if kind == "accordion":
        parts = []
        for section in block.sections:
            title = section.title
            body = blocks_to_text(section.items).strip()
            parts.append(f"{title}\n{'-' * min(len(title), 60)}\n\n{body}")
        return "\n\n".join(parts)
    children = block.items or tuple(b for column in block.columns for b in column)
    return blocks_to_text(children)


def _table_text(block: Block) -> str:
    p = block.props
    rows: list[list[str]] = []
    if p.get("headers"):
        rows.append(list(p.get("headers")))
    if p.get("cells"):
        rows += [[cell["content"] for cell in row] for row in p.get("cells")]
    else:
        rows += [list(row) for row in p.get("rows") or []]
    if p.get("footerRow"):
        rows.append(list(p.get("footerRow")))
    lines = [" | ".join(html_to_text(cell) for cell in row) for row in rows]
    if p.text("captionText"):
        lines.insert(0, p.text("captionText"))
    return "\n".join(lines)


def blocks_to_text(blocks: tuple[Block, ...] | list[Block]) -> str:
    """The text of `blocks`, one paragraph each, with their condition/repeat markers."""
    out = []
    for block in blocks:
        p = block.props
        if p.flag("hideOnMobile") and p.flag("hideOnDesktop"):
            continue
        text = _block_text(block).strip()
        if not text:
            continue
        text += "\n\n"
        for kind in ("repeat", "condition"):
            rule = p.get(kind)
            if rule:
                opening, closing = marker("each" if kind == "repeat" else "if", rule)
                text = f"{opening}{text}{closing}"
        out.append(text)
    return "".join(out)
