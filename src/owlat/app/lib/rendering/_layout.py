"""Blocks to HTML: each block's box and the blocks that hold blocks.

Every block is wrapped in its box: an optional margin table, then a full-width table whose
cell carries padding, border, radius and background (a gradient over a solid fallback).
Around the box: `owlat-hide-mobile` (hidden by the mobile media query), hidden-on-desktop
blocks are hidden inline and shown by the mobile media query (clients without media queries
and Outlook never show them), dark-mode colours become a per-block class in the
`prefers-color-scheme: dark` rules, and conditional/repeated blocks are bracketed by the
markers the personalizer evaluates per recipient.

Columns use the hybrid layout: inline-block columns with a max width in px that stack below
the breakpoint (or percentage widths when they must not stack), inside Outlook-only table
cells of fixed width.
"""

from __future__ import annotations

from owlat.app.lib.rendering._context import TABLE, Context, num, px, style
from owlat.app.lib.rendering._elements import LEAVES, _gradient
from owlat.app.lib.rendering.blocks import Block, Props
from owlat.app.lib.rendering.variables import escape, marker

_RATIOS: dict[int, dict[str, tuple[int, ...]]] = {
    2: {"left-wide": (2, 1), "right-wide": (1, 2), "left-narrow": (1, 2), "right-narrow": (2, 1)},
    3: {
        "left-wide": (2, 1, 1),
        "right-wide": (1, 1, 2),
        "left-narrow": (2, 3, 3),
        "right-narrow": (3, 3, 2),
    },
}
_VALIGN = {"top": "top", "middle": "middle", "bottom": "bottom"}


def render_blocks(blocks: tuple[Block, ...] | list[Block], ctx: Context) -> str:
    return "".join(render_block(block, ctx) for block in blocks)


def render_block(block: Block, ctx: Context, *, full_width: bool = False) -> str:
    """The block in its box, inside its visibility, condition and repeat brackets; a
    `full_width` root block's background spans the window around the content column."""
    p = block.props
    if p.flag("hideOnMobile") and p.flag("hideOnDesktop"):
        return ""
    pad = [p.num(f"padding{side}", 0) for side in ("Top", "Right", "Bottom", "Left")]
    margin = [p.num(f"margin{side}", 0) for side in ("Top", "Right", "Bottom", "Left")]
    border_width = p.num("borderWidth", 0) if p.text("borderStyle", "solid") != "none" else 0
    background_key = "blockBackgroundColor" if block.type == "button" else "backgroundColor"
    background = p.text(background_key)
    # a button's own colour, gradient and radius belong to the button, not to its box
    gradient = None if block.type == "button" else _gradient(p)
    rounded = "borderRadius" in p and block.type != "button"
    dark_class = _dark_class(p, ctx)
    inner_width = ctx.width - pad[1] - pad[3] - margin[1] - margin[3] - 2 * border_width
    own_background = bool(background or gradient) and not p.dark("backgroundColor")
    on_page = ctx.on_page and not own_background and not p.dark("textColor")
    inner = _render_inner(block, ctx.inside(inner_width, on_page=on_page))
    box = style(
        ("padding", " ".join(px(v) for v in pad) if any(pad) else None),
        ("background-color", background or None),
        ("background-image", gradient),
        (
            "border",
            f"{px(border_width)} {p.text('borderStyle', 'solid')} "
            f"{p.text('borderColor', '#e5e7eb')}"
            if border_width
            else None,
        ),
        ("border-radius", px(p.num("borderRadius", 0)) if rounded else None),
    )
    td_class = f' class="{dark_class}"' if dark_class else ""
    bgcolor = f' bgcolor="{background}"' if background else ""
    html = (
        f'<table {TABLE} width="100%" style="border-collapse:separate"><tr>'
        f'<td{td_class}{bgcolor} style="{box}">{inner}</td></tr></table>'
    )
    if any(margin):
        outside = " ".join(px(v) for v in margin)
        html = (
            f'<table {TABLE} width="100%"><tr><td style="padding:{outside}">'
            f"{html}</td></tr></table>"
        )
    if full_width:
        band = style(("background-color", background or None), ("background-image", gradient))
        html = (
            f'<table {TABLE} width="100%"><tr><td align="center" style="{band}">'
            f"{_centered(html, ctx.theme.base_width)}</td></tr></table>"
        )
    classes = " ".join(
        c
        for c in (
            "owlat-hide-mobile" if p.flag("hideOnMobile") else "",
            "owlat-show-mobile" if p.flag("hideOnDesktop") else "",
            p.text("cssClass"),
        )
        if c
    )
    if classes:
        hidden = (
            ' style="display:none;max-height:0;overflow:hidden;mso-hide:all"'
            if p.flag("hideOnDesktop")
            else ""
        )
        html = f'<div class="{escape(classes)}"{hidden}>{html}</div>'
    if p.flag("hideOnDesktop"):
        html = f"<!--[if !mso]><!-->{html}<!--<![endif]-->"
    for kind in ("repeat", "condition"):
        rule = p.get(kind)
        if rule:
            opening, closing = marker("each" if kind == "repeat" else "if", rule)
            html = f"{opening}{html}{closing}"
    return html


def _dark_class(p: Props, ctx: Context) -> str:
    """A class carrying the block's `darkMode` overrides, for `prefers-color-scheme: dark`
    and their Outlook.com twins (`[data-ogsb]` backgrounds, `[data-ogsc]` text)."""
    background, color = p.dark("backgroundColor"), p.dark("textColor")
    border, link = p.dark("borderColor"), p.dark("linkColor")
    if not (background or color or border or link):
        return ""
    name = ctx.rules.new_class()
    rules = [
        ("ogsb", f".{name}", "background-color", background),
        ("ogsb", f".{name}", "border-color", border),
        ("ogsc", f".{name},.{name} *", "color", color),
        ("ogsc", f".{name} a", "color", link),
    ]
    for outlook, selector, prop, value in rules:
        if not value:
            continue
        ctx.rules.dark.append(f"{selector}{{{prop}:{value}!important}}")
        twin = ",".join(f"[data-{outlook}] {one}" for one in selector.split(","))
        ctx.rules.outlook_dark.append(f"{twin}{{{prop}:{value}!important}}")
    return name


def _render_inner(block: Block, ctx: Context) -> str:
    leaf = LEAVES.get(block.type)
    if leaf is not None:
        return leaf(block, ctx)
    if block.type == "columns":
        return _columns(block, ctx)
    if block.type == "container":
        return _container(block, ctx)
    if block.type == "hero":
        return _hero(block, ctx)
    return _accordion(block, ctx)


def _columns(block: Block, ctx: Context) -> str:
    p = block.props
    count = len(block.columns)
    weights: tuple[int, ...] = _RATIOS.get(count, {}).get(p.text("ratio", "equal"), (1,) * count)
    total = sum(weights)
    gap = p.num("columnGap", 16 if count > 1 else 0)
    styles = p.get("columnStyles") or []
    stacking = p.get("mobileStacking") is not False
    valign = _VALIGN[p.text("verticalAlign", "top")]
    order = list(range(count))
    reverse = p.text("mobileStackOrder") == "reverse"
    if reverse:
        order.reverse()
    rtl = (p.text("direction") == "rtl") != reverse
    cells = []
    for position, index in enumerate(order):
        cs = Props(dict(styles[index]) if index < len(styles) else {})
        share = weights[index] / total
        width = ctx.width * share
        left = gap / 2 if position > 0 else 0
        right = gap / 2 if position < count - 1 else 0
        if rtl:
            left, right = right, left
        own_pad = [cs.num(f"padding{s}", 0) for s in ("Top", "Right", "Bottom", "Left")]
        border_width = cs.num("borderWidth", 0)
        inner_width = width - left - right - own_pad[1] - own_pad[3] - 2 * border_width
        background = cs.text("backgroundColor")
        image = cs.text("backgroundImage")
        column_ctx = ctx.inside(inner_width, on_page=ctx.on_page and not background and not image)
        box = style(
            ("padding", " ".join(px(v) for v in own_pad) if any(own_pad) else None),
            ("background-color", background or None),
            ("background-image", f"url('{image}')" if image else None),
            ("background-size", cs.text("backgroundSize", "cover") if image else None),
            ("background-position", cs.text("backgroundPosition", "center") if image else None),
            (
                "border",
                f"{px(border_width)} {cs.text('borderStyle', 'solid')} "
                f"{cs.text('borderColor', '#e5e7eb')}"
                if border_width
                else None,
            ),
            ("border-radius", px(cs.num("borderRadius", 0)) if "borderRadius" in cs else None),
            ("vertical-align", _VALIGN[cs.text("verticalAlign", valign)]),
            ("direction", "ltr"),
        )
        stacks = stacking and cs.get("stackOnMobile") is not False
        outer = style(
            ("display", "inline-block"),
            ("vertical-align", _VALIGN[cs.text("verticalAlign", valign)]),
            ("width", "100%" if stacks else f"{num(share * 100)}%"),
            ("max-width", px(width) if stacks else None),
            ("font-size", "16px"),
            ("direction", "ltr"),
        )
        content = render_blocks(block.columns[index], column_ctx)
        column_class = ' class="owlat-col"' if stacks else ""
        cells.append(
            (
                width,
                f'<div{column_class} style="{outer}">'
                f'<table {TABLE} width="100%"><tr><td style="padding:0 {px(right)} 0 {px(left)}">'
                f'<table {TABLE} width="100%" style="border-collapse:separate"><tr>'
                f'<td style="{box}">{content}</td></tr></table></td></tr></table></div>',
            )
        )
    direction = "rtl" if rtl else "ltr"
    mso = [
        f'<!--[if mso]><table {TABLE} width="{int(ctx.width)}" dir="{direction}"><tr>'
        f'<td width="{int(cells[0][0])}" valign="{valign}"><![endif]-->'
    ]
    for i, (width, html) in enumerate(cells):
        if i:
            mso.append(f'<!--[if mso]></td><td width="{int(width)}" valign="{valign}"><![endif]-->')
        mso.append(html)
    mso.append("<!--[if mso]></td></tr></table><![endif]-->")
    return f'<div dir="{direction}" style="font-size:0;text-align:left">{"".join(mso)}</div>'


def _centered(html: str, width: float) -> str:
    """`html` at most `width` px wide, centered (a fixed table in Outlook)."""
    return (
        f'<!--[if mso]><table {TABLE} width="{int(width)}" align="center"><tr><td><![endif]-->'
        f'<div style="max-width:{px(width)};margin:0 auto">{html}</div>'
        "<!--[if mso]></td></tr></table><![endif]-->"
    )


def _background_image(p: Props) -> list[tuple[str, str | None]]:
    image = p.text("backgroundImage")
    if not image:
        return []
    return [
        ("background-image", f"url('{image}')"),
        ("background-size", p.text("backgroundSize", "cover")),
        ("background-position", p.text("backgroundPosition", "center")),
        ("background-repeat", "no-repeat"),
    ]


def _container(block: Block, ctx: Context) -> str:
    p = block.props
    width = min(p.num("maxWidth", ctx.width), ctx.width)
    background = _background_image(p)
    inner = ctx.inside(width, on_page=ctx.on_page and not background)
    html = render_blocks(block.items, inner)
    if background:
        html = (
            f'<table {TABLE} width="100%"><tr><td style="{style(*background)}">'
            f"{html}</td></tr></table>"
        )
    return _centered(html, width) if width < ctx.width else html


def _hero(block: Block, ctx: Context) -> str:
    p = block.props
    height = p.num("height", 300)
    fixed = p.text("mode", "fixed-height") == "fixed-height"
    valign = _VALIGN[p.text("verticalAlign", "middle")]
    image = p.text("backgroundImage")
    overlay = p.text("overlayColor")
    inner = ctx.inside(ctx.width, on_page=False)
    content = render_blocks(block.items, inner)
    cell = style(
        *_background_image(p),
        ("background-color", p.text("backgroundColor", "#1f2937") if not image else None),
        ("height", px(height) if fixed else None),
        ("vertical-align", valign),
    )
    if overlay:
        content = (
            f'<table {TABLE} width="100%" height="{num(height) if fixed else "100%"}"><tr>'
            f'<td valign="{valign}" style="{style(("background-color", overlay))}">'
            f"{content}</td></tr></table>"
        )
    background_attr = f' background="{escape(image)}"' if image else ""
    html = (
        f'<table {TABLE} width="100%"><tr><td{background_attr} valign="{valign}"'
        f' height="{num(height) if fixed else ""}" style="{cell}">'
    )
    if image:
        html += (
            '<!--[if gte mso 9]><v:rect xmlns:v="urn:schemas-microsoft-com:vml" fill="true"'
            f' stroke="false" style="width:{int(ctx.width)}px;height:{int(height)}px">'
            f'<v:fill type="frame" src="{escape(image)}"'
            f' color="{p.text("backgroundColor", "#1f2937")}"/>'
            '<v:textbox inset="0,0,0,0"><![endif]-->'
        )
    html += f"<div>{content}</div>"
    if image:
        html += "<!--[if gte mso 9]></v:textbox></v:rect><![endif]-->"
    return html + "</td></tr></table>"


def _accordion(block: Block, ctx: Context) -> str:
    """Every section expanded: its title as a header over its blocks (the CSS-only toggles of
    upstream work in a few clients; the expanded form reads everywhere)."""
    p = block.props
    header = style(
        ("background-color", p.text("headerBackgroundColor", "#f3f4f6")),
        ("color", p.text("headerTextColor", ctx.theme.text_color)),
        ("font-family", ctx.theme.font_family),
        ("font-size", px(p.num("headerFontSize", 16))),
        ("font-weight", "700"),
        ("padding", "12px 16px"),
    )
    separator = f"1px solid {p.text('sectionBorderColor', '#e5e7eb')}"
    background = p.text("contentBackgroundColor")
    inner = ctx.inside(ctx.width - 32, on_page=ctx.on_page and not background)
    rows = []
    for section in block.sections:
        body = style(
            ("padding", "12px 16px"),
            ("background-color", background or None),
            ("border-bottom", separator),
        )
        rows.append(
            f'<tr><td style="{header}">{escape(section.title)}</td></tr>'
            f'<tr><td style="{body}">{render_blocks(section.items, inner)}</td></tr>'
        )
    return f'<table {TABLE} width="100%">{"".join(rows)}</table>'


def render_page(blocks: list[Block], ctx: Context) -> str:
    """The root blocks in the centered content column; a full-width block breaks out of it
    so its background spans the window."""
    runs: list[str] = []
    pending: list[str] = []
    width = ctx.theme.base_width
    for block in blocks:
        if not block.props.flag("fullWidth"):
            pending.append(render_block(block, ctx))
            continue
        if pending:
            runs.append(_centered("".join(pending), width))
            pending = []
        runs.append(render_block(block, ctx, full_width=True))
    if pending:
        runs.append(_centered("".join(pending), width))
    return "".join(runs)
