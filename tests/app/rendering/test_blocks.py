"""Content validation on save: every sample is valid; each bad input is refused with the path
of the offending value and the reason; limits on size, block count, depth and rawHtml."""

from __future__ import annotations

import json
from typing import Any

import pytest

from owlat.app.lib.rendering import InvalidContent, Theme, validate_content
from owlat.app.lib.rendering.blocks import MAX_BLOCKS, MAX_CONTENT_CHARS, MAX_DEPTH

from .samples import SAMPLES, kitchen_sink, sample, text_block


def _error(content: Any) -> InvalidContent:
    with pytest.raises(InvalidContent) as caught:
        validate_content(content if isinstance(content, str) else json.dumps(content))
    assert caught.value.error_code == "INVALID_CONTENT"
    return caught.value


def _columns_with(item: dict[str, Any]) -> list[dict[str, Any]]:
    filler = text_block("<p>x</p>")
    columns = sample("columns", columnCount=2, columns=[[filler], [item]])
    return [filler, filler, filler, columns]


def test_every_sample_and_the_kitchen_sink_are_valid() -> None:
    blocks = validate_content(json.dumps(kitchen_sink()))
    assert [b.type for b in blocks][: len(SAMPLES)] == list(SAMPLES)
    assert sum(1 for b in blocks for _ in b.walk()) > len(blocks)  # nested blocks are walked
    assert validate_content(kitchen_sink())[0].props.text("html").startswith("<p>Hello")


def test_the_issue_example_path() -> None:
    button = {"id": "b", "type": "button", "content": {"text": "Go", "url": "ftp://x.example"}}
    error = _error(_columns_with(button))
    assert str(error) == "content[3].columns[1][0].url: must be an http(s), mailto: or tel: URL"
    assert error.path == "content[3].columns[1][0].url"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "content: is not valid JSON"),
        ({"blocks": []}, "content: must be an array of blocks"),
        ([42], "content[0]: must be a block object {id, type, content}"),
        ([{"type": "text", "content": {"html": "x"}}], "content[0].id: must be a non-empty"),
        (
            [{"id": "a", "type": "marquee", "content": {}}],
            "content[0].type: unknown block type 'marquee' (one of text, image",
        ),
        ([{"id": "a", "type": "text"}], "content[0].content: must be an object"),
        ([{"id": "a", "type": "text", "content": {}}], "content[0].html: is required"),
        (
            [{"id": "a", "type": "text", "content": {"html": "x"}, "extra": 1}],
            "content[0].extra: unknown field of a block",
        ),
        ([text_block("x", colour="red")], "content[0].colour: unknown field"),
        ([text_block("x", fontSize="16px")], "content[0].fontSize: must be a number, not a string"),
        ([text_block("x", fontSize=0)], "content[0].fontSize: must be between 1 and 200"),
        ([text_block("x", blockType="h4")], "content[0].blockType: must be one of paragraph"),
        ([text_block("x", textColor="red;x:y")], "content[0].textColor: must be a CSS colour"),
        ([text_block("x", hideOnMobile="yes")], "content[0].hideOnMobile: must be true or false"),
        (
            [text_block("x", fontFamily="Arial;}</style>")],
            "content[0].fontFamily: must be a font stack",
        ),
        (
            [sample("button", url="javascript:alert(1)")],
            "content[0].url: must be an http(s), mailto: or tel: URL",
        ),
        (
            [sample("button", url=" JaVaScRiPt:alert(1)")],
            "content[0].url: must not contain spaces",
        ),
        ([sample("button", url="https://")], "content[0].url: must be an http(s), mailto:"),
        ([sample("button", url="")], "content[0].url: must be an http(s), mailto: or tel: URL"),
        (
            [sample("image", src="data:image/png;base64,AAAA")],
            "content[0].src: must be an http(s) URL",
        ),
        (
            [sample("button", url="{{link|'javascript:alert(1)'}}")],
            "content[0].url fallback: must be an http(s), mailto: or tel: URL",
        ),
        (
            [sample("hero", backgroundImage="https://x.example/{{id}}.png")],
            "content[0].backgroundImage: must be an http(s) URL without placeholders",
        ),
        (
            [sample("social", links=[{"platform": "myspace", "url": "https://x.example"}])],
            "content[0].links[0].platform: must be one of twitter",
        ),
        (
            [sample("menu", items=[{"label": "A", "url": "vbscript:x"}])],
            "content[0].items[0].url: must be an http(s), mailto: or tel: URL",
        ),
        (
            [sample("table", rows=[["a", 3]])],
            "content[0].rows[0][1]: must be a string, not a number",
        ),
        ([sample("carousel", images=[])], "content[0].images: needs at least 1 entries"),
        (
            [text_block("Hi {{ name }}")],
            "content[0].html: malformed placeholder {{ name }}: write {{name}}",
        ),
        (
            [text_block("Hi {{name|'it's'}}")],
            "content[0].html: malformed placeholder {{name|'it's'}}",
        ),
        (
            [text_block("x", condition={"variable": "plan", "operator": "equals"})],
            "content[0].condition.value: is required by the equals operator",
        ),
        (
            [text_block("x", condition={"variable": "a b", "operator": "exists"})],
            "content[0].condition.variable: must be a variable name",
        ),
        (
            [text_block("x", repeat={"variable": "items", "itemAlias": "item", "maxItems": 0})],
            "content[0].repeat.maxItems: must be between 1 and 500",
        ),
        (
            [text_block("x", darkMode={"bogus": "#000000"})],
            "content[0].darkMode.bogus: unknown field",
        ),
        (
            [text_block("x", darkMode={"backgroundColor": "url(x)"})],
            "content[0].darkMode.backgroundColor: must be a CSS colour",
        ),
        (
            [text_block("x", darkMode={"src": "https://cdn.example.com/d.png"})],
            "content[0].darkMode.src: unknown field",
        ),
        (
            [sample("image", darkMode={"src": "javascript:alert(1)"})],
            "content[0].darkMode.src: must be",
        ),
        ([text_block("x", darkMode="#000000")], "content[0].darkMode: must be an object"),
        (
            [sample("columns", columnCount=3)],
            "content[0].columns: has 2 columns but columnCount is 3",
        ),
        (
            [sample("columns", columns=[[sample("table")], []])],
            "content[0].columns[0][0].type: a table block cannot go here (only text, image",
        ),
        (
            [sample("container", items=[sample("hero")])],
            "content[0].items[0].type: a hero block cannot go here",
        ),
        (
            [sample("accordion", sections=[{"id": "s", "title": "T", "items": [{"id": "x"}]}])],
            "content[0].sections[0].items[0].type: unknown block type 'None'",
        ),
    ],
)
def test_bad_content_names_the_path(content: Any, message: str) -> None:
    assert str(_error(content)).startswith(message)


def test_five_megabyte_raw_html_block() -> None:
    huge = {"id": "r", "type": "rawHtml", "content": {"html": "<p>" + "x" * 5_000_000 + "</p>"}}
    error = _error([text_block("ok"), huge])
    assert str(error) == "content[1].html: 5,000,007 characters, over the limit of 100,000"


def test_content_over_the_size_limit() -> None:
    blocks = [text_block("x" * 40_000, f"b{i}") for i in range(MAX_CONTENT_CHARS // 40_000 + 1)]
    error = _error(blocks)
    assert error.path == "content"
    assert error.reason.endswith(f"characters of JSON, over the limit of {MAX_CONTENT_CHARS:,}")
    assert str(_error(" " * 16_000_001)).startswith("content: 16,000,001 characters of JSON")


def test_too_many_blocks() -> None:
    error = _error([text_block("x", f"b{i}") for i in range(MAX_BLOCKS + 1)])
    assert str(error) == f"content[{MAX_BLOCKS}]: a template holds at most {MAX_BLOCKS} blocks"


def test_nesting_too_deep() -> None:
    block: dict[str, Any] = text_block("deep")
    for _ in range(MAX_DEPTH):
        block = {"id": "c", "type": "container", "content": {"items": [block]}}
    path = "content[0]" + ".items[0]" * MAX_DEPTH
    assert str(_error([block])) == f"{path}: blocks nest at most {MAX_DEPTH} levels deep"


def test_placeholders_allowed_where_upstream_allows_them() -> None:
    blocks = validate_content(
        [
            sample("button", url="{{resetLink}}"),
            sample("button", url="https://example.com/u/{{contactId}}?ref={{ref|'mail'}}"),
            sample("button", url="mailto:{{email}}"),
            sample("image", src="{{avatar|'https://cdn.example.com/a.png'}}", linkUrl=""),
        ]
    )
    assert [b.props.text("url") for b in blocks[:3]] == [
        "{{resetLink}}",
        "https://example.com/u/{{contactId}}?ref={{ref|'mail'}}",
        "mailto:{{email}}",
    ]


def test_dark_mode_is_one_shape_whatever_fields_carry_it() -> None:
    """The flat dark fields and `darkMode.color` are read as `darkMode` keys; an explicit
    `darkMode` key wins over its flat twin."""
    flat, nested, both = validate_content(
        [
            sample("image", darkSrc="https://cdn.example.com/d.png", darkTextColor="#eeeeee"),
            sample("image", darkMode={"src": "https://cdn.example.com/d.png", "color": "#eeeeee"}),
            text_block("x", darkBackgroundColor="#111111", darkMode={"backgroundColor": "#222222"}),
        ]
    )
    expected = {"src": "https://cdn.example.com/d.png", "textColor": "#eeeeee"}
    assert flat.props.get("darkMode") == nested.props.get("darkMode") == expected
    assert "darkSrc" not in flat.props and "darkTextColor" not in flat.props
    assert both.props.get("darkMode") == {"backgroundColor": "#222222"}


def test_null_optional_fields_count_as_absent() -> None:
    [block] = validate_content([text_block("x", fontSize=None, condition=None)])
    assert "fontSize" not in block.props and block.props.get("condition") is None


def test_theme_from_settings() -> None:
    theme = Theme.from_settings(
        {"primaryColor": "#123456", "logoUrl": "https://x.example/l.png", "baseWidth": 640}
    )
    assert (theme.primary_color, theme.base_width, theme.font_family) == (
        "#123456",
        640,
        "Arial, sans-serif",
    )
    assert Theme.from_settings(None) == Theme()
    with pytest.raises(InvalidContent, match=r"^theme\.fontFamily: must be a font stack"):
        Theme.from_settings({"fontFamily": "x;}</style><script>"})
