"""The content scanner (`lib/content_scan.py`): one case per finding kind, each naming the
finding it expects (removing that rule fails it), the score and levels, and no false
positive on real templates (the bench template, every golden rendering)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.bench_rendering import template as bench_template

from owlat.app.lib.content_scan import ScanResult, level_of, scan
from owlat.app.lib.rendering import render_template, validate_content

GOLDEN = Path(__file__).parent / "rendering" / "golden"


def codes(result: ScanResult) -> set[tuple[str, str]]:
    return {(flag.code, flag.where) for flag in result.flags}


def link(href: str, text: str = "Read more") -> str:
    return f'<p>Hello, <a href="{href}">{text}</a></p>'


@pytest.mark.parametrize(
    ("subject", "html", "text", "expected"),
    [
        ("Hi", "<p>Act now, this is a limited time offer</p>", "", {("spam_phrase", "html")}),
        ("Make money fast", "<p>Hi</p>", "", {("spam_phrase", "subject")}),
        ("Hi", "<p>Hi</p>", "Cheap VIAGRA here", {("prohibited_content", "text")}),
        ("Hi", link("https://evil.example/login", "www.paypal.com"),
         "", {("link_text_mismatch", "html")}),
        ("Hi", link("http://203.0.113.9/login"), "", {("ip_host", "html")}),
        ("Hi", link("http://[2001:db8::1]/login"), "", {("ip_host", "html")}),
        ("Hi", link("https://bit.ly/3xYz"), "", {("url_shortener", "html")}),
        ("Hi", "<p>Hi</p>", "See https://tinyurl.com/abc", {("url_shortener", "text")}),
        ("Hi", link("https://mybank.com@evil.example/"), "", {("userinfo_in_url", "html")}),
        ("Hi", link("https://xn--pypal-4ve.com/"), "", {("homoglyph_host", "html")}),
        ("Hi", link("https://xn--mnchen-3ya.de/"), "", {("idn_host", "html")}),
        ("Hi", "<p>Log in to your Pаypal account</p>", "", {("brand_homoglyph", "html")}),
        ("Hi", "<p>The Ωmega deal</p>", "", {("mixed_script_word", "html")}),
        ("YOUR ORDER HAS SHIPPED", "<p>Hi</p>", "", {("subject_caps", "subject")}),
        ("Big news!!!", "<p>Hi</p>", "", {("subject_exclamations", "subject")}),
    ],
)  # fmt: skip
def test_each_finding_kind(subject: str, html: str, text: str, expected: set[object]) -> None:
    assert codes(scan(subject, html, text)) == expected


def test_harmless_look_alikes_are_not_findings() -> None:
    html = (
        link("https://www.example.com/shop", "example.com")  # same site, www or not
        + link("https://shop.example.com/", "example.com")
        + link("{{unsubscribeUrl}}", "Unsubscribe")
        + link("mailto:help@example.com", "help@example.com")
        + link("https://example.com/v", "Version 2.0.1")
        + "<p>Café in München, ΑΒΓ in Greek, Привет</p>"
    )
    assert scan("Your order {{orderId}} is ready", html, "Urgently needed? No.").flags == ()


def test_score_weights_cap_and_levels() -> None:
    assert scan("Hi", "<p>act now</p>", "").score == 3
    medium_and_low = scan("Hi", link("https://bit.ly/x", "go") + "<p>act now</p>", "")
    assert (medium_and_low.score, medium_and_low.level) == (13, "clean")
    high = scan("Hi", link("http://203.0.113.9/"), "")
    assert (high.score, high.level) == (20, "suspicious")
    # a finding counts once, however often and wherever it occurs
    repeated = scan("viagra", "<p>viagra viagra</p>" + link("http://203.0.113.9/"), "viagra")
    assert (repeated.score, repeated.level) == (40, "blocked")
    assert [f.where for f in repeated.flags if f.code == "prohibited_content"] == ["subject"]
    everything = scan(
        "FREE MONEY NOW!!!", "<p>viagra, counterfeit, replica watches, fake passport</p>", ""
    )
    assert everything.score == 100
    assert [level_of(s) for s in (0, 14, 15, 39, 40, 100)] == [
        "clean", "clean", "suspicious", "suspicious", "blocked", "blocked",
    ]  # fmt: skip


def test_summary_names_the_heaviest_findings_first() -> None:
    result = scan("Big news!!!", "<p>act now</p>" + link("http://203.0.113.9/"), "")
    assert result.summary(2) == 'Link to a raw IP address 203.0.113.9; Subject has "!!!" (+1 more)'
    assert result.record()["flags"][0] == {
        "code": "subject_exclamations", "severity": "low", "message": 'Subject has "!!!"',
        "where": "subject",
    }  # fmt: skip


def test_the_bench_template_and_golden_renderings_are_clean() -> None:
    rendered = render_template(
        validate_content(json.dumps(bench_template())), subject="{{firstName|'Hi'}}, spring is here"
    )
    assert scan(rendered.subject, rendered.html, rendered.text).flags == ()
    pages = sorted(GOLDEN.glob("*.html"))
    assert len(pages) > 20
    for page in pages:
        text = page.with_suffix(".txt").read_text()
        result = scan("Welcome to our newsletter", page.read_text(), text)
        assert result.flags == (), (page.name, result)
