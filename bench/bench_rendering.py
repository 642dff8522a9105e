"""Email rendering (issue 16): render once, personalize per recipient.

    .venv/bin/python bench/bench_rendering.py [--contacts 10000] [--renders 200]

The template: 12 blocks (text, image, button, columns, divider, table, list, social,
container, menu, rawHtml, spacer) whose content JSON is about 20 KB, using 6 variables
(firstName, lastName, email, plan, company, confirmUrl) in the subject, the HTML and the
text part. One process, one core.

(1) Full render: `validate_content` (from the JSON string) + `render_template` (blocks to
HTML, CSS inlining, text part), `--renders` times: median and p99 in ms.

(2) Personalization of `--contacts` contacts: `compile_template` once, then `personalize`
per contact (subject, HTML and text, escaping per part): messages per second. Baseline in
the same run over the same rendered template and values: a plain `str.replace` loop per
contact (the 6 `{{name}}` tokens replaced in the three parts, values HTML-escaped for the
HTML; no fallbacks, conditions or URL checks).
"""

from __future__ import annotations

import argparse
import html
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from owlat.app.lib.rendering import (
    compile_template,
    contact_variables,
    personalize,
    render_template,
    validate_content,
)

VARIABLES = ("firstName", "lastName", "email", "plan", "company", "confirmUrl")
PARAGRAPH = (
    "Our spring collection is here, {{firstName|'friend'}}. We have spent the winter "
    "redesigning the things you use every day so that they last longer, weigh less and "
    "look better on your desk. Everything ships free for {{plan|'members'}} customers. "
)


def _text(block_id: str, html: str, **extra: Any) -> dict[str, Any]:
    return {"id": block_id, "type": "text", "content": {"html": html, **extra}}


def template() -> list[dict[str, Any]]:
    long_text = "".join(f"<p>{PARAGRAPH * 3}</p>" for _ in range(8))
    return [
        _text("b1", "<p>Hello {{firstName|'there'}} {{lastName}},</p>", blockType="h1"),
        {
            "id": "b2",
            "type": "image",
            "content": {"src": "https://cdn.example.com/hero.jpg", "alt": "Spring", "width": 600},
        },
        _text("b3", long_text, paddingLeft=24, paddingRight=24),
        {
            "id": "b4",
            "type": "button",
            "content": {"text": "Shop now, {{firstName|'friend'}}", "url": "{{confirmUrl}}"},
        },
        {
            "id": "b5",
            "type": "columns",
            "content": {
                "columnCount": 2,
                "columns": [
                    [_text("c1", f"<p>{PARAGRAPH}</p>")],
                    [_text("c2", f"<p>{PARAGRAPH}</p>")],
                ],
            },
        },
        {"id": "b6", "type": "divider", "content": {}},
        {
            "id": "b7",
            "type": "table",
            "content": {
                "headers": ["Product", "Qty", "Price"],
                "rows": [[f"Product {i} for {{{{company|'you'}}}}", "1", "$9"] for i in range(8)],
            },
        },
        {
            "id": "b8",
            "type": "list",
            "content": {"items": [PARAGRAPH[:120] for _ in range(5)], "listType": "check"},
        },
        {
            "id": "b9",
            "type": "social",
            "content": {
                "links": [
                    {"platform": p, "url": f"https://{p}.example/owlat", "enabled": True}
                    for p in ("twitter", "github", "mastodon", "bluesky")
                ]
            },
        },
        {
            "id": "b10",
            "type": "container",
            "content": {
                "backgroundColor": "#f3f4f6",
                "items": [_text("k1", long_text), _text("k2", f"<p>{PARAGRAPH * 20}</p>")],
            },
        },
        {
            "id": "b11",
            "type": "menu",
            "content": {
                "items": [
                    {"label": label, "url": f"https://example.com/{label.lower()}"}
                    for label in ("Shop", "Blog", "Help", "Account")
                ]
            },
        },
        {
            "id": "b12",
            "type": "rawHtml",
            "content": {
                "html": "<p>Sent to {{email}} by {{company|'Owlat'}}. "
                '<a href="https://example.com/prefs">Preferences</a></p>'
            },
        },
    ]


def contacts(count: int) -> list[dict[str, Any]]:
    return [
        {
            "email": f"person{i}@example.com",
            "firstName": f"Person <{i}>",
            "lastName": "O'Neil & Sons",
            "properties": {
                "plan": "pro" if i % 3 else "free",
                "company": f"Company {i}",
                "confirmUrl": f"https://example.com/c/{i}",
            },
        }
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--renders", type=int, default=200)
    options = parser.parse_args()

    content = json.dumps(template())
    timings = []
    for _ in range(options.renders):
        start = time.perf_counter()
        blocks = validate_content(content)
        rendered = render_template(blocks, subject="{{firstName|'Hi'}}, spring is here")
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    used = sorted(set(rendered.variables))
    print(
        f"bench_rendering: 12 blocks, content {len(content) / 1000:.1f} KB of JSON, rendered "
        f"HTML {len(rendered.html) / 1000:.1f} KB + text {len(rendered.text) / 1000:.1f} KB, "
        f"variables {', '.join(used)}"
    )
    print(
        f"full render (validate + render + inline + text), {options.renders} runs: "
        f"median {statistics.median(timings):.2f} ms   p99 "
        f"{timings[int(len(timings) * 0.99) - 1]:.2f} ms"
    )

    people = [contact_variables(c) for c in contacts(options.contacts)]
    start = time.perf_counter()
    compiled = compile_template(rendered)
    sizes = 0
    for variables in people:
        message = personalize(compiled, variables)
        sizes += len(message.html)
    ours = options.contacts / (time.perf_counter() - start)

    parts = (rendered.subject, rendered.html, rendered.text)
    start = time.perf_counter()
    for variables in people:
        subject, body, text = parts
        for name in VARIABLES:
            token, value = "{{" + name + "}}", str(variables.get(name, ""))
            subject = subject.replace(token, value)
            body = body.replace(token, html.escape(value))
            text = text.replace(token, value)
        sizes += len(body)
    baseline = options.contacts / (time.perf_counter() - start)
    print(f"{'personalized messages (subject + HTML + text)':<52}{'per second':>12}")
    print(f"{'str.replace of 6 tokens per part, baseline':<52}{baseline:>12,.0f}")
    print(
        f"{'compile once + personalize per contact':<52}{ours:>12,.0f}   "
        f"ratio {ours / baseline:.2f}  ({options.contacts:,} contacts)"
    )


if __name__ == "__main__":
    main()
