"""Personalization (§8.2 and beyond): one render, many recipients; escaping per part,
fallbacks, missing variables, URL placeholders, conditions and repeats per recipient,
contact fields and custom properties as variables."""

from __future__ import annotations

import re
from typing import Any

import pytest

from owlat.app.lib.rendering import (
    Message,
    compile_template,
    contact_variables,
    personalize,
)
from owlat.app.lib.rendering.variables import escape

from .samples import render, sample, text_block


def _send(blocks: list[dict[str, Any]], subject: str = "Hi", **variables: Any) -> Message:
    return personalize(compile_template(render(blocks, subject=subject)), variables)


def _body_text(message: Message) -> str:
    """The visible text of the HTML body (tags and the head stripped)."""
    body = message.html.split("<body", 1)[1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip()


def test_values_are_html_escaped_in_html_raw_in_text_and_header_safe_in_subject() -> None:
    value = '<b>Ann</b> & "Bo"\r\nBcc: x@evil.example'
    message = _send(
        [text_block("<p>Dear {{firstName}}</p>")], subject="Hi {{firstName}}!", firstName=value
    )
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; &quot;Bo&quot;" in message.html
    assert "<b>Ann</b>" not in message.html
    assert f"Dear {value}" in message.text
    assert message.subject == 'Hi <b>Ann</b> & "Bo" Bcc: x@evil.example!'
    assert "\r" not in message.subject and "\n" not in message.subject


def test_fallbacks_and_missing_values() -> None:
    blocks = [text_block("<p>Hi {{firstName|'friend &amp; co'}}, {{lastName}}.</p>")]
    for variables in ({}, {"firstName": None}, {"firstName": ""}):
        message = _send(blocks, subject="{{firstName|'You'}} {{plan}}", **variables)
        assert "Hi friend &amp; co, ." in message.html  # the fallback is HTML source
        assert "Hi friend & co, ." in message.text  # and plain text in the text part
        assert message.subject == "You "
        assert message.missing == ("plan", "lastName")
    assert _send(blocks, firstName="Zoë", lastName="Ng").missing == ()


def test_values_print_as_text() -> None:
    html = "<p>{{n}}|{{f}}|{{t}}|{{z}}|{{l}}</p>"
    message = _send([text_block(html)], n=3.0, f=2.5, t=True, z=0, l=[1, "a"])
    assert "3|2.5|true|0|[1,&quot;a&quot;]" in message.html
    assert '3|2.5|true|0|[1,"a"]' in message.text


@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(1)",
        " JAVASCRIPT:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:x",
        "//evil.example/x",
        "\x01javascript:x",
    ],
)
def test_a_placeholder_that_starts_a_link_only_takes_safe_urls(value: str) -> None:
    blocks = [
        sample("button", url="{{link|'https://example.com/home'}}", text="Go"),
        text_block('<p><a href="{{link}}">raw</a></p>'),
        sample("image", src="{{avatar}}", linkUrl=""),
    ]
    message = _send(blocks, link=value, avatar=value)
    hrefs = re.findall(r'(?:href|src)="([^"]*)"', message.html)
    assert "https://example.com/home" in hrefs
    assert not any(value.strip() in h or "script" in h.lower() for h in hrefs)
    assert set(message.missing) == {"link", "avatar"}


def test_safe_urls_go_in_escaped() -> None:
    blocks = [sample("button", url="{{link}}", text="Go")]
    message = _send(blocks, link='https://example.com/a?x=1&y="2"')
    assert 'href="https://example.com/a?x=1&amp;y=&quot;2&quot;"' in message.html
    assert '[Go] https://example.com/a?x=1&y="2"' in message.text


def test_placeholders_after_the_scheme_are_just_escaped() -> None:
    message = _send([sample("button", url="https://example.com/u/{{id}}")], id='1"><script>')
    assert 'href="https://example.com/u/1&quot;&gt;&lt;script&gt;"' in message.html


def test_contact_fields_and_custom_properties_are_variables() -> None:
    contact = {
        "email": "ada@example.com",
        "firstName": "Ada",
        "properties": {"plan": "pro", "seats": 12.0, "renews_on": 1_767_225_600_000},
    }
    variables = contact_variables(contact, date_keys=["renews_on"])
    assert variables == {
        "email": "ada@example.com",
        "firstName": "Ada",
        "plan": "pro",
        "seats": 12.0,
        "renews_on": "2026-01-01",
    }
    html = "<p>{{firstName}} ({{email}}) on {{plan}} with {{seats}} seats until {{renews_on}}</p>"
    message = personalize(compile_template(render([text_block(html)])), variables)
    assert "Ada (ada@example.com) on pro with 12 seats until 2026-01-01" in message.text


def test_conditions_are_evaluated_per_recipient() -> None:
    def block(operator: str, value: str | None = None) -> dict[str, Any]:
        rule = {"variable": "plan", "operator": operator}
        if value is not None:
            rule["value"] = value
        return text_block(f"<p>[{operator}]</p>", operator, condition=rule)

    blocks = [
        block("equals", "pro"),
        block("notEquals", "pro"),
        block("contains", "ro"),
        block("exists"),
        block("notExists"),
    ]
    compiled = compile_template(render(blocks))
    shown = {
        plan: [
            op
            for op in ("equals", "notEquals", "contains", "exists", "notExists")
            if f"[{op}]" in personalize(compiled, {"plan": plan}).html
        ]
        for plan in ("pro", "free", None)
    }
    assert shown == {
        "pro": ["equals", "contains", "exists"],
        "free": ["notEquals", "exists"],
        None: ["notEquals", "notExists"],
    }
    text = personalize(compiled, {"plan": "free"}).text
    assert "[notEquals]" in text and "[equals]" not in text


def test_repeat_blocks_over_a_list_or_its_json() -> None:
    row = text_block(
        "<p>{{$index}}: {{item.name}} × {{item.qty|'1'}}</p>",
        "row",
        repeat={"variable": "items", "itemAlias": "item", "maxItems": 2},
    )
    compiled = compile_template(render([row, text_block("<p>Total {{total}}</p>")]))
    items = [{"name": "Mug <x>", "qty": 2}, {"name": "Pen"}, {"name": "Cut off"}]
    for value in (items, '[{"name": "Mug <x>", "qty": 2}, {"name": "Pen"}, {"name": "Cut off"}]'):
        message = personalize(compiled, {"items": value, "total": "$9"})
        assert "0: Mug &lt;x&gt; × 2" in message.html and "1: Pen × 1" in message.html
        assert "Cut off" not in message.html
        assert "0: Mug <x> × 2\n\n1: Pen × 1" in message.text
    for nothing in ({}, {"items": "not json"}, {"items": {"a": 1}}):
        message = personalize(compiled, nothing)
        assert "×" not in message.html and "Total" in message.html


def test_one_render_many_recipients() -> None:
    rendered = render([text_block("<p>Hi {{firstName}}</p>")], subject="For {{firstName}}")
    compiled = compile_template(rendered)
    names = [f"Person {i}" for i in range(50)]
    messages = [personalize(compiled, {"firstName": n}) for n in names]
    assert [m.subject for m in messages] == [f"For {n}" for n in names]
    assert rendered.variables == ("firstName",)
    assert all(f"Hi {n}" in m.html for n, m in zip(names, messages, strict=True))


def test_variables_lists_names_from_every_part() -> None:
    rendered = render(
        [
            sample("button", url="{{link}}", text="{{cta|'Go'}}"),
            text_block("x", condition={"variable": "plan", "operator": "exists"}),
            text_block("{{row.name}}", repeat={"variable": "rows", "itemAlias": "row"}),
        ],
        subject="{{firstName}}",
    )
    assert rendered.variables == ("cta", "firstName", "link", "plan", "rows")


def test_plain_fields_are_escaped_around_their_placeholders() -> None:
    assert escape("<b>{{name|'A & B'}}</b> 'q'") == (
        "&lt;b&gt;{{name|'A &amp; B'}}&lt;/b&gt; &#x27;q&#x27;"
    )
    message = _send([sample("button", text="<Go> {{name|'A & B'}}", url="https://x.example")])
    assert "&lt;Go&gt; A &amp; B" in message.html and "[<Go> A & B]" in message.text


def test_markers_in_a_text_override_that_do_not_parse_stay_text() -> None:
    from owlat.app.lib.rendering import RenderedTemplate

    rendered = RenderedTemplate(
        html="<p>a<!--owlat:if {bad}-->b<!--owlat:endif--><!--owlat:endeach--></p>",
        text='x<!--owlat:if {"variable":"v","operator":"exists"}-->y',
        subject="s",
        preheader="",
        variables=(),
    )
    message = personalize(compile_template(rendered), {})
    assert message.html == "<p>a<!--owlat:if {bad}-->b<!--owlat:endif--><!--owlat:endeach--></p>"
    assert message.text == "x"  # an unclosed section ends with the part
