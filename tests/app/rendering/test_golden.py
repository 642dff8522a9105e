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
