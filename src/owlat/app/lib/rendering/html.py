"""Blocks + theme → a `RenderedTemplate`: the email HTML (placeholders kept), its text part,
subject, preheader and the variables it uses. Rendered once per template (or send) and
personalized per recipient by `personalize.py`.

The document is table-based: a full-width background table, the content column 600 px wide
(`Theme.base_width`; a fixed table in Outlook, a max-width div elsewhere), a hidden preheader,
a mobile media query at `Theme.breakpoint` (480 px: stacked columns, fluid images,
hidden-on-mobile / hidden-on-desktop blocks) and `prefers-color-scheme: dark` rules (with
Outlook.com's `[data-ogsc]`/`[data-ogsb]` twins). css-inline then copies the element defaults
(paragraph margins, link colour, image resets) into style attributes, which is what clients
that drop `<style>` read; the head-only rules sit in a `<style>` the inliner leaves alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import css_inline

from owlat.app.lib.rendering._context import Context, Rules
from owlat.app.lib.rendering._layout import render_page
from owlat.app.lib.rendering.blocks import Block
from owlat.app.lib.rendering.text import blocks_to_text
from owlat.app.lib.rendering.theme import Theme
from owlat.app.lib.rendering.variables import TOKEN, escape

_INLINER = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)
_HEADER_BREAKS = re.compile(r"[\r\n]+")
_PREHEADER_FILL = "&#847;&zwnj;&nbsp;" * 40


@dataclass(frozen=True)
class RenderedTemplate:
    """A rendered template: `html` and `text` with placeholders and condition/repeat markers,
    `subject` and `preheader` with placeholders, `variables` the top-level names it reads."""

    html: str
    text: str
    subject: str
    preheader: str
    variables: tuple[str, ...]


def render_template(
    blocks: Sequence[Block],
    *,
    subject: str,
    preheader: str = "",
    theme: Theme | None = None,
    text: str | None = None,
    lang: str = "en",
) -> RenderedTemplate:
    """Render validated `blocks` with `theme`; `text` overrides the generated text part
    (upstream's plainTextOverride). Line breaks in the subject become spaces."""
    theme = theme or Theme()
    subject = _HEADER_BREAKS.sub(" ", subject)
    rules = Rules()
    body = render_page(list(blocks), Context(theme, float(theme.base_width), rules))
    document = _document(body, theme, rules, subject=subject, preheader=preheader, lang=lang)
    html = _INLINER.inline(document)
    plain = blocks_to_text(list(blocks)).strip() + "\n" if text is None else text
    return RenderedTemplate(
        html=html,
        text=plain,
        subject=subject,
        preheader=preheader,
        variables=_variables(blocks, html, plain, subject),
    )


def _variables(blocks: Sequence[Block], *parts: str) -> tuple[str, ...]:
    names = {m.group(1) for part in parts for m in TOKEN.finditer(part)}
    for root in blocks:
        for block in root.walk():
            for kind in ("condition", "repeat"):
                rule = block.props.get(kind)
                if rule:
                    names.add(rule["variable"])
    return tuple(sorted(n for n in names if "." not in n and not n.startswith("$")))


def _document(
    body: str, theme: Theme, rules: Rules, *, subject: str, preheader: str, lang: str
) -> str:
    background = theme.background_color
    page = escape(f"padding:0;font-family:{theme.font_family};color:{theme.text_color}")
    hidden_preheader = (
        '<div style="display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;'
        f'opacity:0;overflow:hidden;mso-hide:all">{escape(preheader)}{_PREHEADER_FILL}</div>'
        if preheader
        else ""
    )
    return (
        "<!DOCTYPE html>"
        f'<html lang="{escape(lang)}" xmlns="http://www.w3.org/1999/xhtml"'
        ' xmlns:v="urn:schemas-microsoft-com:vml"'
        ' xmlns:o="urn:schemas-microsoft-com:office:office">'
        '<head><meta charset="UTF-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta http-equiv="X-UA-Compatible" content="IE=edge">'
        '<meta name="color-scheme" content="light dark">'
        '<meta name="supported-color-schemes" content="light dark">'
        f"<title>{escape(subject)}</title>"
        "<!--[if mso]><xml><o:OfficeDocumentSettings><o:AllowPNG/>"
        "<o:PixelsPerInch>96</o:PixelsPerInch></o:OfficeDocumentSettings></xml><![endif]-->"
        f'<style data-css-inline="ignore">{_head_css(theme, rules)}</style>'
        f"<style>{_inline_css(theme)}</style>"
        "</head>"
        '<body class="owlat-bg"'
        f' style="margin:0;padding:0;width:100%;background-color:{background}">'
        f"{hidden_preheader}"
        f'<table role="presentation" class="owlat-bg" width="100%" cellpadding="0" cellspacing="0"'
        f' border="0" bgcolor="{background}" style="background-color:{background}">'
        f'<tr><td align="center" style="{page}">{body}</td></tr></table>'
        "</body></html>"
    )


def _inline_css(theme: Theme) -> str:
    """Element defaults, copied into style attributes (and kept in the head)."""
    return (
        f"body{{margin:0;padding:0}}"
        f"p{{margin:0 0 12px}}p:last-child{{margin-bottom:0}}"
        f"a{{color:{theme.link_color}}}"
        "ul,ol{margin:0 0 12px;padding-left:24px}"
        "img{border:0;outline:none;text-decoration:none;-ms-interpolation-mode:bicubic}"
    )


def _head_css(theme: Theme, rules: Rules) -> str:
    """Resets, the mobile media query and dark mode: rules only a `<style>` can carry."""
    dark_bg, dark_text, dark_link = (
        theme.dark_background_color,
        theme.dark_text_color,
        theme.dark_link_color,
    )
    text_targets = ",".join(
        f".owlat-tx{s}" for s in ("", " p", " li", " td", " th", " span", " h1", " h2", " h3")
    )
    return (
        "body,table,td,a{-webkit-text-size-adjust:100%;-ms-text-size-adjust:100%}"
        "table,td{mso-table-lspace:0pt;mso-table-rspace:0pt}"
        "table,td,th{mso-line-height-rule:exactly}"
        "a[x-apple-data-detectors]{color:inherit!important;text-decoration:none!important;"
        "font-size:inherit!important;font-family:inherit!important;"
        "font-weight:inherit!important;line-height:inherit!important}"
        "#MessageViewBody a{color:inherit;text-decoration:none}"
        "u+#body a{color:inherit;text-decoration:none}"
        f"@media only screen and (max-width:{theme.breakpoint}px){{"
        ".owlat-col{display:block!important;width:100%!important;max-width:100%!important}"
        ".owlat-fluid-img{width:100%!important;max-width:100%!important;height:auto!important}"
        ".owlat-hide-mobile{display:none!important;max-height:0!important;overflow:hidden!important}"
        ".owlat-show-mobile{display:block!important;max-height:none!important;"
        "overflow:visible!important}"
        f"{''.join(rules.mobile)}}}"
        "@media (prefers-color-scheme:dark){"
        f".owlat-bg{{background-color:{dark_bg}!important}}"
        f"{text_targets}{{color:{dark_text}!important}}"
        f".owlat-tx a{{color:{dark_link}!important}}"
        ".owlat-light-img{display:none!important}.owlat-dark-img{display:block!important}"
        f"{''.join(rules.dark)}}}"
        f"[data-ogsb] .owlat-bg{{background-color:{dark_bg}!important}}"
        f"[data-ogsc] .owlat-tx,[data-ogsc] .owlat-tx *{{color:{dark_text}!important}}"
        f"[data-ogsc] .owlat-tx a{{color:{dark_link}!important}}"
        f"{''.join(rules.outlook_dark)}"
    )
