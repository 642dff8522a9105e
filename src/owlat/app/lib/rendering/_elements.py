"""Leaf blocks to table HTML: text, image, button (with an Outlook VML twin), divider, spacer,
social, table, rawHtml, video, menu, carousel, list and progressBar. Each returns the block's
inner HTML; `_layout.py` wraps it in the block's box (spacing, border, background,
visibility) and handles the blocks that hold other blocks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from owlat.app.lib.rendering._context import TABLE, Context, attr, num, px, style
from owlat.app.lib.rendering._schema import SOCIAL_PLATFORMS
from owlat.app.lib.rendering.blocks import Block, Props
from owlat.app.lib.rendering.sanitize import sanitize_html
from owlat.app.lib.rendering.variables import TOKEN, escape

_HEADING_SIZES = {"h1": 32.0, "h2": 24.0, "h3": 20.0}
_MARGIN_BY_ALIGN = {"left": "0 auto 0 0", "center": "0 auto", "right": "0 0 0 auto"}
_BULLETS = {"bullet": "&#8226;", "check": "&#10003;"}


def _tx(ctx: Context) -> str:
    """The dark-mode text class for text on the page background."""
    return ' class="owlat-tx"' if ctx.on_page else ""


def _typography(p: Props, ctx: Context, size: float, color: str) -> list[tuple[str, str | None]]:
    transform = p.text("textTransform")
    return [
        ("font-family", p.text("fontFamily", ctx.theme.font_family)),
        ("font-size", px(p.num("fontSize", size))),
        ("font-weight", num(p.num("fontWeight", 0)) if "fontWeight" in p else None),
        ("letter-spacing", px(p.num("letterSpacing", 0)) if "letterSpacing" in p else None),
        ("text-transform", transform if transform != "none" else None),
        ("color", p.text("textColor", color)),
    ]


def _mobile_font(p: Props, ctx: Context, key: str = "mobileFontSize") -> str:
    if key not in p:
        return ""
    name = ctx.rules.new_class()
    ctx.rules.mobile.append(f".{name},.{name} *{{font-size:{px(p.num(key, 16))}!important}}")
    return f" {name}"


def text(block: Block, ctx: Context) -> str:
    p = block.props
    kind = p.text("blockType", "paragraph")
    tag = kind if kind in _HEADING_SIZES else "div"
    decoration = p.text("textDecoration")
    css = style(
        *_typography(p, ctx, _HEADING_SIZES.get(kind, 16.0), ctx.theme.text_color),
        ("font-weight", "700" if tag != "div" and "fontWeight" not in p else None),
        ("line-height", num(p.num("lineHeight", 1.5))),
        ("text-align", p.text("textAlign")),
        ("text-decoration", decoration if decoration != "none" else None),
        ("margin", "0" if tag != "div" else None),
        ("mso-line-height-rule", "exactly"),
    )
    classes = ("owlat-text" + (" owlat-tx" if ctx.on_page else "") + _mobile_font(p, ctx)).strip()
    return f'<{tag} class="{classes}" style="{css}">{sanitize_html(p.text("html"))}</{tag}>'


def _img(src: str, alt: str, width: float, css: str, extra: str = "") -> str:
    return f'<img src="{attr(src)}" alt="{attr(alt)}" width="{num(width)}"{extra} style="{css}">'


def image(block: Block, ctx: Context) -> str:
    p = block.props
    width = min(p.num("width", ctx.width), ctx.width)
    align = p.text("align", "center")
    css = style(
        ("display", "block"),
        ("width", "100%"),
        ("max-width", px(width)),
        ("height", "auto"),
        ("margin", _MARGIN_BY_ALIGN[align]),
        ("border", "0"),
        ("border-radius", px(p.num("borderRadius", 0)) if "borderRadius" in p else None),
    )
    extra = ""
    if "height" in p:
        extra += f' height="{num(p.num("height", 0))}"'
    for key in ("title", "srcset", "sizes"):
        if key in p:
            extra += f' {key}="{attr(p.text(key))}"'
    if p.flag("decorative"):
        extra += ' role="presentation"'
    alt = "" if p.flag("decorative") else p.text("alt")
    fluid = ' class="owlat-fluid-img"' if p.flag("fluidOnMobile") else ""
    picture = _img(p.text("src"), alt, width, css, extra + fluid)
    if p.dark("src"):
        light = ' class="owlat-light-img' + (' owlat-fluid-img"' if fluid else '"')
        dark_css = css.replace("display:block", "display:none")
        dark = _img(p.dark("src"), alt, width, dark_css, extra + ' class="owlat-dark-img"')
        picture = (
            _img(p.text("src"), alt, width, css, extra + light)
            + f"<!--[if !mso]><!-->{dark}<!--<![endif]-->"
        )
    if "linkUrl" in p:
        picture = f'<a href="{attr(p.text("linkUrl"))}" target="_blank">{picture}</a>'
    return f'<table {TABLE} width="100%"><tr><td align="{align}">{picture}</td></tr></table>'


def _vml_width(label: str, size: float, pad_x: float) -> int:
    shown = TOKEN.sub("x" * 10, label)
    return int(len(shown) * size * 0.6 + 2 * pad_x)


def button(block: Block, ctx: Context) -> str:
    p = block.props
    theme = ctx.theme
    url, label = attr(p.text("url")), escape(p.text("text"))
    align = p.text("align", "center")
    background = p.text("backgroundColor", theme.primary_color)
    color = p.text("textColor", "#ffffff")
    size, radius = p.num("fontSize", 16), p.num("borderRadius", 6)
    pad_x, pad_y = p.num("paddingX", 24), p.num("paddingY", 12)
    border_width = p.num("buttonBorderWidth", 0)
    border = ""
    if border_width and p.text("buttonBorderStyle", "solid") != "none":
        line = p.text("buttonBorderStyle", "solid")
        border = f"{px(border_width)} {line} {p.text('buttonBorderColor', background)}"
    gradient = _gradient(p)
    full = align == "full"
    width = "100%" if full else p.text("buttonWidth")
    target = p.text("target", "_blank")
    font = _typography(p, ctx, size, color)
    cell = style(
        ("background-color", background),
        ("background-image", gradient),
        ("border-radius", px(radius)),
        ("border", border),
        ("text-align", "center"),
        ("mso-padding-alt", f"{px(pad_y)} {px(pad_x)}"),
    )
    link = style(
        ("display", "block" if full or width else "inline-block"),
        ("padding", f"{px(pad_y)} {px(pad_x)}"),
        *font,
        ("line-height", "1.2"),
        ("text-decoration", "none"),
        ("text-align", "center"),
        ("border-radius", px(radius)),
    )
    rel = ' rel="noopener noreferrer"' if target == "_blank" else ""
    table_width = f' width="{attr(width)}"' if width else ""
    html = (
        f'<table {TABLE} align="{"center" if full else align}"{table_width}'
        f' style="margin:{_MARGIN_BY_ALIGN["center" if full else align]}">'
        f'<tr><td style="{cell}"><a href="{url}" target="{target}"{rel} style="{link}">'
        f"{label}</a></td></tr></table>"
    )
    vml_width = ctx.width if full else _vml_width(p.text("text"), size, pad_x)
    if width.endswith("px"):
        vml_width = float(width[:-2])
    height = int(size * 1.2 + 2 * pad_y + 2 * border_width)
    stroke_color = p.text("buttonBorderColor", background)
    stroke = (
        f' strokeweight="{px(border_width)}" strokecolor="{stroke_color}"'
        if border
        else ' stroke="f"'
    )
    arc = min(50, round(radius / max(height, 1) * 100))
    vml = (
        f'<!--[if mso]><table {TABLE} align="{"center" if full else align}"><tr><td>'
        '<v:roundrect xmlns:v="urn:schemas-microsoft-com:vml"'
        ' xmlns:w="urn:schemas-microsoft-com:office:word"'
        f' href="{url}" style="height:{height}px;v-text-anchor:middle;width:{int(vml_width)}px"'
        f' arcsize="{arc}%"{stroke} fillcolor="{attr(background)}"><w:anchorlock/>'
        f'<center style="{style(*font)}">{label}</center></v:roundrect></td></tr></table>'
        "<![endif]-->"
    )
    return f"{vml}<!--[if !mso]><!-->{html}<!--<![endif]-->"


def _gradient(p: Props) -> str | None:
    gradient = p.get("backgroundGradient")
    if not gradient:
        return None
    stops = ",".join(f"{s['color']} {num(s['position'])}%" for s in gradient["stops"])
    return f"linear-gradient({gradient['direction']},{stops})"


def divider(block: Block, ctx: Context) -> str:
    p = block.props
    line = f"{px(p.num('thickness', 1))} {p.text('style', 'solid')} {p.text('color', '#e5e7eb')}"
    align = p.text("align", "center")
    return (
        f'<table {TABLE} width="{num(p.num("width", 100))}%" align="{align}"'
        f' style="margin:{_MARGIN_BY_ALIGN[align]}"><tr>'
        f'<td style="{style(("border-top", line), ("font-size", "1px"), ("line-height", "1px"))}">'
        "&nbsp;</td></tr></table>"
    )


def spacer(block: Block, ctx: Context) -> str:
    height = px(block.props.num("height", 24))
    css = style(
        ("height", height),
        ("line-height", height),
        ("font-size", "1px"),
        ("mso-line-height-rule", "exactly"),
    )
    return f'<div style="{css}">&#8202;</div>'


def social(block: Block, ctx: Context) -> str:
    p = block.props
    size, gap = p.num("iconSize", 32), p.num("iconSpacing", 8)
    color = p.text("iconColor", ctx.theme.primary_color)
    outline = p.text("iconStyle") == "outline"
    vertical = p.text("mode") == "vertical"
    cells = []
    for link in p.get("links") or []:
        if link.get("enabled") is False:
            continue
        label = SOCIAL_PLATFORMS[link["platform"]]
        if link.get("iconUrl"):
            icon_css = style(("display", "block"), ("border", "0"))
            icon = _img(link["iconUrl"], label, size, icon_css, f' height="{num(size)}"')
            if p.flag("showLabels"):
                icon = (
                    f'<table {TABLE}><tr><td>{icon}</td><td style="'
                    f'{style(("padding-left", "6px"), ("color", color), ("font-size", "14px"))}">'
                    f"{label}</td></tr></table>"
                )
        else:
            badge = style(
                ("display", "inline-block"),
                ("padding", f"0 {px(round(size / 3))}"),
                ("height", px(size)),
                ("line-height", px(size)),
                ("border-radius", px(size / 2)),
                ("border", f"1px solid {color}" if outline else None),
                ("background-color", None if outline else color),
                ("color", color if outline else "#ffffff"),
                ("font-family", ctx.theme.font_family),
                ("font-size", px(max(11, round(size * 0.4)))),
                ("font-weight", "700"),
                ("text-decoration", "none"),
            )
            icon = f'<span style="{badge}">{label}</span>'
        anchor = f'<a href="{attr(link["url"])}" target="_blank" style="text-decoration:none">'
        cell_css = style(("padding", f"{px(gap / 2)}"))
        cells.append(f'<td style="{cell_css}">{anchor}{icon}</a></td>')
    rows = "".join(f"<tr>{c}</tr>" for c in cells) if vertical else f"<tr>{''.join(cells)}</tr>"
    align = p.text("align", "center")
    return f'<table {TABLE} align="{align}" style="margin:{_MARGIN_BY_ALIGN[align]}">{rows}</table>'


def table(block: Block, ctx: Context) -> str:
    p = block.props
    pad = px(p.num("cellPadding", 8))
    border = p.text("borderColor", "#e5e7eb")
    align = p.text("textAlign", "left")
    columns = p.get("columns") or []
    mode = p.text("responsiveMode", "default")
    hidden = set(p.get("hideOnMobileColumns") or []) if mode == "hide-columns" else set()
    stack = ctx.rules.new_class() if mode == "stack" else ""
    if stack:
        ctx.rules.mobile.append(
            f".{stack} tr,.{stack} td,.{stack} th{{display:block!important;width:100%!important;"
            "box-sizing:border-box!important}"
        )

    def cell(tag: str, content: str, index: int, extra: Sequence[tuple[str, str | None]]) -> str:
        column = columns[index] if index < len(columns) else {}
        css = style(
            ("padding", pad),
            ("border", f"1px solid {border}"),
            ("text-align", column.get("textAlign", align)),
            ("width", column.get("width")),
            ("word-break", "break-word"),
            ("font-family", ctx.theme.font_family),
            ("font-size", "14px"),
            *extra,
        )
        # text on the page background (no header, stripe or cell colour) follows dark mode
        shaded = any(k == "background-color" and v for k, v in extra)
        plain = ctx.on_page and tag == "td" and not shaded
        names = " ".join(
            n for n, on in (("owlat-hide-mobile", index in hidden), ("owlat-tx", plain)) if on
        )
        classes = f' class="{names}"' if names else ""
        return f'<{tag}{classes} style="{css}">{sanitize_html(content)}</{tag}>'

    header_css = [
        ("background-color", p.text("headerBackgroundColor", "#f3f4f6")),
        ("color", p.text("headerTextColor", ctx.theme.text_color)),
        ("font-weight", "700"),
    ]
    parts = []
    if "captionText" in p:
        caption = escape(p.text("captionText"))
        parts.append(f'<caption{_tx(ctx)} style="padding:{pad}">{caption}</caption>')
    headers = p.get("headers") or []
    if headers:
        ths = "".join(cell("th", h, i, header_css) for i, h in enumerate(headers))
        parts.append(f"<thead><tr>{ths}</tr></thead>")
    stripe = p.text("stripeColor", "#f9fafb") if p.flag("striped") else ""
    rows: list[str] = []
    rich = p.get("cells")
    for r, row in enumerate(rich or p.get("rows") or []):
        shade = ("background-color", stripe if r % 2 else None)
        tds = []
        for i, value in enumerate(row):
            if rich:
                span = "".join(
                    f' {name.lower()}="{value[name]}"'
                    for name in ("colSpan", "rowSpan")
                    if name in value
                )
                extra = [
                    shade,
                    ("color", ctx.theme.text_color),
                    ("background-color", value.get("backgroundColor")),
                    ("font-weight", num(value["fontWeight"]) if "fontWeight" in value else None),
                ]
                if "textAlign" in value:
                    extra.append(("text-align", value["textAlign"]))
                tds.append(cell("td", value["content"], i, extra).replace("<td", f"<td{span}", 1))
            else:
                tds.append(cell("td", value, i, [shade, ("color", ctx.theme.text_color)]))
        rows.append(f"<tr>{''.join(tds)}</tr>")
    parts.append(f"<tbody>{''.join(rows)}</tbody>")
    footer = p.get("footerRow") or []
    if footer:
        bold = [("font-weight", "700")]
        cells = "".join(cell("td", f, i, bold) for i, f in enumerate(footer))
        parts.append(f"<tfoot><tr>{cells}</tr></tfoot>")
    classes = f' class="{stack}"' if stack else ""
    html = (
        f'<table{classes} role="table" cellpadding="0" cellspacing="0" border="0" width="100%"'
        f' style="border-collapse:collapse;width:100%">{"".join(parts)}</table>'
    )
    if mode == "scroll":
        html = f'<div style="overflow-x:auto;-webkit-overflow-scrolling:touch">{html}</div>'
    return html


def raw_html(block: Block, ctx: Context) -> str:
    return f"<div{_tx(ctx)}>{sanitize_html(block.props.text('html'))}</div>"


def video(block: Block, ctx: Context) -> str:
    p = block.props
    width = min(p.num("width", ctx.width), ctx.width)
    align = p.text("align", "center")
    url = attr(p.text("videoUrl"))
    thumb = _img(
        p.text("thumbnailUrl"),
        p.text("alt"),
        width,
        style(
            ("display", "block"),
            ("width", "100%"),
            ("max-width", px(width)),
            ("height", "auto"),
            ("margin", _MARGIN_BY_ALIGN[align]),
            ("border", "0"),
        ),
    )
    play = style(
        ("display", "inline-block"),
        ("margin-top", "8px"),
        ("padding", "6px 14px"),
        ("border-radius", "999px"),
        ("background-color", p.text("playButtonColor", ctx.theme.primary_color)),
        ("color", "#ffffff"),
        ("font-family", ctx.theme.font_family),
        ("font-size", px(max(12, p.num("playButtonSize", 48) / 3))),
        ("text-decoration", "none"),
    )
    return (
        f'<table {TABLE} width="100%"><tr><td align="{align}">'
        f'<a href="{url}" target="_blank">{thumb}</a>'
        f'<a href="{url}" target="_blank" style="{play}">'
        f"&#9654; {escape(p.text('alt', 'Play'))}</a>"
        "</td></tr></table>"
    )


def menu(block: Block, ctx: Context) -> str:
    p = block.props
    font = _typography(p, ctx, 14, ctx.theme.text_color)
    spacing = px(p.num("itemSpacing", 16) / 2)
    stack = ""
    if p.flag("hamburgerOnMobile"):
        stack = ctx.rules.new_class()
        ctx.rules.mobile.append(f".{stack}{{display:block!important;text-align:center!important}}")
    separator = p.text("separator")
    sep_css = style(("color", p.text("separatorColor", "#9ca3af")), *font[:2])
    cells = []
    for i, item in enumerate(p.get("items") or []):
        if i and separator:
            names = " ".join(
                n for n, on in (("owlat-hide-mobile", stack), ("owlat-tx", ctx.on_page)) if on
            )
            classes = f' class="{names}"' if names else ""
            cells.append(f'<td{classes} style="{sep_css}">{escape(separator)}</td>')
        link = style(*font, ("text-decoration", "none"))
        cls = f' class="{stack}"' if stack else ""
        cells.append(
            f'<td{cls} style="padding:4px {spacing}"><a{_tx(ctx)} href="{attr(item["url"])}"'
            f' target="_blank" style="{link}">{escape(item["label"])}</a></td>'
        )
    align = p.text("align", "center")
    return (
        f'<table {TABLE} align="{align}" style="margin:{_MARGIN_BY_ALIGN[align]}">'
        f"<tr>{''.join(cells)}</tr></table>"
    )


def carousel(block: Block, ctx: Context) -> str:
    """A static carousel: the first image, then a strip of thumbnails when `thumbnailWidth`
    is set (interactive carousels work in too few clients to rely on)."""
    p = block.props
    images = p.get("images") or []
    radius = px(p.num("borderRadius", 0))

    def picture(item: dict[str, str], width: float) -> str:
        css = style(
            ("display", "block"),
            ("width", "100%"),
            ("max-width", px(width)),
            ("height", "auto"),
            ("border", "0"),
            ("border-radius", radius),
        )
        img = _img(
            item.get("thumbnailSrc") or item["src"] if width < ctx.width else item["src"],
            item.get("alt", ""),
            width,
            css,
        )
        return (
            f'<a href="{attr(item["linkUrl"])}" target="_blank">{img}</a>'
            if item.get("linkUrl")
            else img
        )

    first = picture(images[0], ctx.width)
    html = f'<table {TABLE} width="100%"><tr><td align="center">{first}</td></tr>'
    thumb = p.num("thumbnailWidth", 0)
    if thumb and len(images) > 1:
        cells = "".join(f'<td style="padding:4px">{picture(i, thumb)}</td>' for i in images)
        html += f'<tr><td align="center"><table {TABLE}><tr>{cells}</tr></table></td></tr>'
    return html + "</table>"


def list_block(block: Block, ctx: Context) -> str:
    p = block.props
    kind = p.text("listType", "bullet")
    size = p.num("fontSize", 16)
    color = p.text("textColor", ctx.theme.text_color)
    bullet_css = style(
        ("color", p.text("bulletColor", ctx.theme.primary_color)),
        ("font-size", px(p.num("bulletSize", size))),
        ("font-family", ctx.theme.font_family),
        ("line-height", "1.5"),
        ("padding-right", "8px"),
        ("vertical-align", "top"),
        ("white-space", "nowrap"),
    )
    text_css = style(
        ("color", color),
        ("font-size", px(size)),
        ("line-height", "1.5"),
        ("font-family", ctx.theme.font_family),
        ("vertical-align", "top"),
    )
    spacing = px(p.num("itemSpacing", 6))
    rows = []
    for i, item in enumerate(p.get("items") or []):
        if kind == "numbered":
            mark = f"{i + 1}."
        elif kind == "icon" and "iconUrl" in p:
            mark = _img(p.text("iconUrl"), "", size, style(("display", "block"), ("border", "0")))
        else:
            mark = _BULLETS.get(kind, _BULLETS["bullet"])
        pad = f";padding-bottom:{spacing}" if spacing != "0" else ""
        rows.append(
            f'<tr><td width="1" style="{bullet_css}{pad}">{mark}</td>'
            f'<td{_tx(ctx)} style="{text_css}{pad}">{sanitize_html(item)}</td></tr>'
        )
    return f'<table {TABLE} width="100%">{"".join(rows)}</table>'


def progress_bar(block: Block, ctx: Context) -> str:
    p = block.props
    ratio = p.num("value", 0) / p.num("maxValue", 100)
    percent = max(0, min(100, round(ratio * 100)))
    height = px(p.num("height", 12))
    radius = px(p.num("borderRadius", p.num("height", 12) / 2))
    label_css = style(
        ("color", p.text("labelColor", ctx.theme.text_color)),
        ("font-size", px(p.num("labelFontSize", 12))),
        ("font-family", ctx.theme.font_family),
        ("white-space", "nowrap"),
    )
    inside = p.flag("showLabel") and p.text("labelPosition", "right") == "inside"
    bar = style(
        ("background-color", p.text("barColor", ctx.theme.primary_color)),
        ("height", height),
        ("border-radius", radius),
        ("text-align", "center"),
        ("font-size", "1px"),
        ("line-height", height),
    )
    label = f'<span style="{label_css}">{percent}%</span>' if inside else "&nbsp;"
    filled = f'<td width="{percent}%" style="{bar}">{label}</td>' if percent else ""
    rest = f'<td style="font-size:1px;line-height:{height}">&nbsp;</td>' if percent < 100 else ""
    track = style(("background-color", p.text("trackColor", "#e5e7eb")), ("border-radius", radius))
    html = f'<table {TABLE} width="100%" style="{track}"><tr>{filled}{rest}</tr></table>'
    if p.flag("showLabel") and not inside:
        html = (
            f'<table {TABLE} width="100%"><tr><td width="100%">{html}</td>'
            f'<td{_tx(ctx)} style="padding-left:8px;{label_css}">{percent}%</td></tr></table>'
        )
    return html


LEAVES: dict[str, Callable[[Block, Context], str]] = {
    "text": text,
    "image": image,
    "button": button,
    "divider": divider,
    "spacer": spacer,
    "social": social,
    "table": table,
    "rawHtml": raw_html,
    "video": video,
    "menu": menu,
    "carousel": carousel,
    "list": list_block,
    "progressBar": progress_bar,
}
