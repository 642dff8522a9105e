"""Golden files: each block type rendered alone (HTML and text part), compared byte for byte
with tests/app/rendering/golden/<type>.html and .txt; every output also parses as HTML5
without a single parse error.

Golden HTML is stored with a line break between adjacent tags (`><`), so that a change reads
as a diff of a few lines; the comparison applies the same split to the output.

Regenerate after an intended change with `OWLAT_UPDATE_GOLDEN=1 ./dev test
tests/app/rendering/test_golden.py`, then read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import html5lib
import pytest

from owlat.app.lib.rendering import RenderedTemplate, Theme
from owlat.app.lib.rendering._schema import BLOCK_TYPES

from .samples import SAMPLES, kitchen_sink, render, sample, text_block

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("OWLAT_UPDATE_GOLDEN") == "1"

CASES: dict[str, list[dict[str, object]]] = {
    **{kind: [block] for kind, block in SAMPLES.items()},
    "common-box": [
        text_block(
            "<p>Boxed</p>",
            paddingTop=12,
            paddingRight=16,
            paddingBottom=12,
            paddingLeft=16,
            marginTop=8,
            marginBottom=8,
            backgroundColor="#fef3c7",
            borderWidth=2,
            borderColor="#f59e0b",
            borderStyle="dotted",
            borderRadius=10,
            darkBackgroundColor="#451a03",
            darkTextColor="#fde68a",
            cssClass="promo highlight",
        )
    ],
    "common-visibility": [
        text_block("<p>Desktop only</p>", "a", hideOnMobile=True),
        text_block("<p>Mobile only</p>", "b", hideOnDesktop=True),
        text_block("<p>Never</p>", "c", hideOnMobile=True, hideOnDesktop=True),
    ],
    "common-condition-repeat": [
        text_block(
            "<p>Pro perks for {{firstName}}</p>",
            "a",
            condition={"variable": "plan", "operator": "equals", "value": "pro"},
        ),
        text_block(
            "<p>{{$index}}. {{item.name}} × {{item.qty|'1'}}</p>",
            "b",
            repeat={"variable": "items", "itemAlias": "item", "maxItems": 10},
        ),
    ],
    "common-full-width": [
        sample("text", fullWidth=True, backgroundColor="#0f172a", textColor="#f8fafc"),
        sample(
            "button",
            backgroundGradient={
                "direction": "to right",
                "stops": [
                    {"color": "#6366f1", "position": 0},
                    {"color": "#ec4899", "position": 100},
                ],
            },
        ),
    ],
}


def _check_html5(html: str) -> None:
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    parser.parse(html)  # raises ParseError on the first error


def _compare(name: str, rendered: RenderedTemplate) -> None:
    html = rendered.html.replace("><", ">\n<")
    for suffix, actual in ((".html", html), (".txt", rendered.text)):
        path = GOLDEN / f"{name}{suffix}"
        if UPDATE:
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(actual, encoding="utf-8")
        assert path.exists(), f"{path} is missing: run with OWLAT_UPDATE_GOLDEN=1"
        assert actual == path.read_text(encoding="utf-8"), (
            f"{path.name} differs from its golden file"
        )


def test_every_block_type_has_a_golden_case() -> None:
    assert set(BLOCK_TYPES) <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    rendered = render(CASES[name], subject="Hello {{firstName|'there'}}", preheader="Preview")
    _check_html5(rendered.html)
    _compare(name, rendered)


def test_kitchen_sink_with_a_theme_parses_and_matches() -> None:
    theme = Theme.from_settings(
        {"primaryColor": "#0f766e", "backgroundColor": "#f1f5f9", "textColor": "#0f172a"}
    )
    rendered = render(kitchen_sink(), theme=theme)
    _check_html5(rendered.html)
    _compare("kitchen-sink", rendered)
    assert "#0f766e" in rendered.html and "#f1f5f9" in rendered.html


def test_dark_mode_object_and_flat_fields_render_the_same_bytes() -> None:
    """`darkMode` and the flat dark fields go through one code path."""
    flat = text_block("<p>x</p>", backgroundColor="#fef3c7", darkBackgroundColor="#451a03")
    nested = text_block(
        "<p>x</p>", backgroundColor="#fef3c7", darkMode={"backgroundColor": "#451a03"}
    )
    assert render([flat]).html == render([nested]).html


def test_dark_mode_overrides_in_the_media_query_and_the_outlook_twins() -> None:
    """Each `darkMode` key of the container sample becomes a rule of its block's class in
    `prefers-color-scheme: dark` and the matching Outlook.com `[data-ogsb]`/`[data-ogsc]` rule."""
    html = render([SAMPLES["container"]]).html
    media, outlook = html.split("@media (prefers-color-scheme:dark){", 1)[1].split("}}", 1)
    media += "}"
    assert ".owlat-b1{background-color:#1e1b4b!important}" in media
    assert ".owlat-b1{border-color:#4338ca!important}" in media
    assert ".owlat-b1,.owlat-b1 *{color:#e0e7ff!important}" in media
    assert ".owlat-b1 a{color:#fbbf24!important}" in media
    assert "[data-ogsb] .owlat-b1{background-color:#1e1b4b!important}" in outlook
    assert "[data-ogsb] .owlat-b1{border-color:#4338ca!important}" in outlook
    assert "[data-ogsc] .owlat-b1,[data-ogsc] .owlat-b1 *{color:#e0e7ff!important}" in outlook
    assert "[data-ogsc] .owlat-b1 a{color:#fbbf24!important}" in outlook
    assert '<td class="owlat-b1"' in html


def test_a_button_has_an_outlook_vml_twin_and_every_mail_a_dark_mode_query() -> None:
    """Read directly, not only through the golden bytes: Outlook (mso) gets a VML
    roundrect linking the same URL with the button's colours, other clients the HTML link;
    the head carries the dark-mode media query and the colour-scheme metas."""
    html = render([SAMPLES["button"]]).html
    [mso] = [
        part.split("<![endif]-->")[0]
        for part in html.split("<!--[if mso]>")
        if "<v:roundrect " in part.split("<![endif]-->")[0]
    ]
    assert "</v:roundrect>" in mso
    assert "href=\"{{confirmUrl|'https://example.com/confirm'}}\"" in mso
    assert 'fillcolor="#c4785a"' in mso and 'strokecolor="#a0522d"' in mso
    assert "Confirm {{firstName|'your'}} account</center>" in mso
    assert 'xmlns:v="urn:schemas-microsoft-com:vml"' in html.split("<head>")[0]
    outside = html.split("<!--[if !mso]><!-->")[-1]
    assert "<a href=\"{{confirmUrl|'https://example.com/confirm'}}\"" in outside
    head = html.split("</head>")[0]
    assert "@media (prefers-color-scheme:dark){" in head
    assert '<meta name="color-scheme" content="light dark">' in head
