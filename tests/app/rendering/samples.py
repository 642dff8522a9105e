"""One sample block per type (most fields set), and helpers to build templates from them."""

from __future__ import annotations

import copy
import json
from typing import Any

from owlat.app.lib.rendering import RenderedTemplate, Theme, render_template, validate_content

SAMPLES: dict[str, dict[str, Any]] = {
    "text": {
        "id": "text-1",
        "type": "text",
        "content": {
            "html": "<p>Hello {{firstName|'there'}}, <strong>welcome</strong> to "
            '<a href="https://example.com/about">Example &amp; Co</a>.</p><p>Second line</p>',
            "blockType": "paragraph",
            "fontSize": 16,
            "textColor": "#374151",
            "textAlign": "left",
            "lineHeight": 1.6,
            "letterSpacing": 0.2,
            "mobileFontSize": 15,
            "paddingTop": 8,
            "paddingBottom": 8,
            "paddingLeft": 24,
            "paddingRight": 24,
        },
    },
    "image": {
        "id": "image-1",
        "type": "image",
        "content": {
            "src": "https://cdn.example.com/hero.png",
            "alt": "A hero picture",
            "width": 552,
            "align": "center",
            "linkUrl": "https://example.com/shop?utm_source=email&id={{contactId}}",
            "title": "Shop now",
            "fluidOnMobile": True,
            "darkSrc": "https://cdn.example.com/hero-dark.png",
            "borderRadius": 8,
            "paddingLeft": 24,
            "paddingRight": 24,
        },
    },
    "button": {
        "id": "button-1",
        "type": "button",
        "content": {
            "text": "Confirm {{firstName|'your'}} account",
            "url": "{{confirmUrl|'https://example.com/confirm'}}",
            "backgroundColor": "#c4785a",
            "textColor": "#ffffff",
            "align": "center",
            "borderRadius": 8,
            "paddingX": 28,
            "paddingY": 14,
            "fontWeight": 700,
            "buttonBorderWidth": 2,
            "buttonBorderColor": "#a0522d",
            "blockBackgroundColor": "#fdf2ec",
            "paddingTop": 16,
            "paddingBottom": 16,
        },
    },
    "divider": {
        "id": "divider-1",
        "type": "divider",
        "content": {"color": "#d1d5db", "thickness": 2, "width": 80, "style": "dashed"},
    },
    "spacer": {"id": "spacer-1", "type": "spacer", "content": {"height": 32}},
    "columns": {
        "id": "columns-1",
        "type": "columns",
        "content": {
            "columnCount": 2,
            "ratio": "left-wide",
            "mobileStacking": True,
            "columnGap": 20,
            "columnStyles": [{"backgroundColor": "#f9fafb", "paddingTop": 12}, {}],
            "paddingLeft": 24,
            "paddingRight": 24,
            "columns": [
                [
                    {"id": "c1", "type": "text", "content": {"html": "<p>Left column text</p>"}},
                    {
                        "id": "c2",
                        "type": "button",
                        "content": {"text": "Left", "url": "https://example.com/left"},
                    },
                ],
                [
                    {
                        "id": "c3",
                        "type": "image",
                        "content": {"src": "https://cdn.example.com/side.png", "alt": "Side"},
                    }
                ],
            ],
        },
    },
    "container": {
        "id": "container-1",
        "type": "container",
        "content": {
            "maxWidth": 480,
            "backgroundColor": "#eef2ff",
            "darkMode": {
                "backgroundColor": "#1e1b4b",
                "color": "#e0e7ff",
                "borderColor": "#4338ca",
                "linkColor": "#fbbf24",
            },
            "borderWidth": 1,
            "borderColor": "#c7d2fe",
            "borderStyle": "solid",
            "borderRadius": 12,
            "paddingTop": 16,
            "paddingBottom": 16,
            "items": [
                {
                    "id": "k1",
                    "type": "text",
                    "content": {
                        "html": '<p>Inside a <a href="https://example.com/c">container</a></p>'
                    },
                },
                {"id": "k2", "type": "divider", "content": {}},
            ],
        },
    },
    "hero": {
        "id": "hero-1",
        "type": "hero",
        "content": {
            "backgroundImage": "https://cdn.example.com/bg.jpg",
            "backgroundPosition": "center",
            "backgroundSize": "cover",
            "height": 280,
            "mode": "fixed-height",
            "verticalAlign": "middle",
            "overlayColor": "rgba(0,0,0,0.35)",
            "backgroundColor": "#111827",
            "items": [
                {
                    "id": "h1",
                    "type": "text",
                    "content": {
                        "html": "<p>Big news</p>",
                        "blockType": "h1",
                        "textColor": "#ffffff",
                        "textAlign": "center",
                    },
                }
            ],
        },
    },
    "social": {
        "id": "social-1",
        "type": "social",
        "content": {
            "links": [
                {"platform": "twitter", "url": "https://x.com/example", "enabled": True},
                {"platform": "github", "url": "https://github.com/example", "enabled": True},
                {"platform": "facebook", "url": "https://facebook.com/x", "enabled": False},
                {
                    "platform": "mastodon",
                    "url": "https://mastodon.social/@x",
                    "enabled": True,
                    "iconUrl": "https://cdn.example.com/mastodon.png",
                },
            ],
            "iconStyle": "filled",
            "align": "center",
            "iconSize": 28,
            "iconSpacing": 10,
            "iconColor": "#374151",
        },
    },
    "table": {
        "id": "table-1",
        "type": "table",
        "content": {
            "headers": ["Item", "Qty", "Price"],
            "rows": [["Owl <em>mug</em>", "2", "$24"], ["Sticker pack", "1", "$5"]],
            "footerRow": ["Total", "", "$29"],
            "headerBackgroundColor": "#111827",
            "headerTextColor": "#ffffff",
            "borderColor": "#e5e7eb",
            "striped": True,
            "stripeColor": "#f3f4f6",
            "cellPadding": 10,
            "textAlign": "left",
            "captionText": "Your order",
            "columns": [{"width": "60%"}, {"textAlign": "center"}, {"textAlign": "right"}],
            "responsiveMode": "stack",
        },
    },
    "rawHtml": {
        "id": "raw-1",
        "type": "rawHtml",
        "content": {
            "html": '<div style="color:#6b7280;font-size:12px">Sent to {{email}} · '
            '<a href="https://example.com/prefs">Preferences</a></div>'
        },
    },
    "video": {
        "id": "video-1",
        "type": "video",
        "content": {
            "thumbnailUrl": "https://cdn.example.com/video.jpg",
            "videoUrl": "https://youtube.com/watch?v=abc",
            "alt": "Watch the launch",
            "width": 560,
            "align": "center",
            "playButtonColor": "#dc2626",
        },
    },
    "accordion": {
        "id": "accordion-1",
        "type": "accordion",
        "content": {
            "sections": [
                {
                    "id": "s1",
                    "title": "Shipping",
                    "items": [{"id": "a1", "type": "text", "content": {"html": "<p>Free.</p>"}}],
                },
                {
                    "id": "s2",
                    "title": "Returns & refunds",
                    "items": [{"id": "a2", "type": "text", "content": {"html": "<p>30 days.</p>"}}],
                },
            ],
            "headerBackgroundColor": "#f3f4f6",
            "headerTextColor": "#111827",
            "sectionBorderColor": "#d1d5db",
        },
    },
    "menu": {
        "id": "menu-1",
        "type": "menu",
        "content": {
            "items": [
                {"label": "Shop", "url": "https://example.com/shop"},
                {"label": "Blog", "url": "https://example.com/blog"},
                {"label": "Contact", "url": "mailto:hello@example.com"},
            ],
            "align": "center",
            "fontSize": 14,
            "textColor": "#111827",
            "separator": "|",
            "hamburgerOnMobile": True,
        },
    },
    "carousel": {
        "id": "carousel-1",
        "type": "carousel",
        "content": {
            "images": [
                {
                    "src": "https://cdn.example.com/c1.jpg",
                    "alt": "First",
                    "linkUrl": "https://example.com/1",
                },
                {"src": "https://cdn.example.com/c2.jpg", "alt": "Second"},
                {"src": "https://cdn.example.com/c3.jpg", "alt": "Third"},
            ],
            "thumbnailWidth": 80,
            "borderRadius": 6,
        },
    },
    "list": {
        "id": "list-1",
        "type": "list",
        "content": {
            "items": ["Fast <b>delivery</b>", "Free returns", "Made by {{company|'us'}}"],
            "listType": "check",
            "bulletColor": "#16a34a",
            "fontSize": 15,
            "itemSpacing": 4,
        },
    },
    "progressBar": {
        "id": "progress-1",
        "type": "progressBar",
        "content": {
            "value": 65,
            "maxValue": 100,
            "barColor": "#16a34a",
            "trackColor": "#e5e7eb",
            "height": 14,
            "showLabel": True,
            "labelPosition": "right",
        },
    },
}


def sample(kind: str, **content: Any) -> dict[str, Any]:
    """A copy of the sample block of `kind`, with `content` fields added or replaced."""
    block = copy.deepcopy(SAMPLES[kind])
    block["content"].update(content)
    return block


def text_block(html: str, block_id: str = "t", **content: Any) -> dict[str, Any]:
    return {"id": block_id, "type": "text", "content": {"html": html, **content}}


def render(
    blocks: list[dict[str, Any]],
    subject: str = "Hello {{firstName|'there'}}",
    preheader: str = "",
    theme: Theme | None = None,
) -> RenderedTemplate:
    """Validate and render `blocks` (through their JSON, as a save would)."""
    return render_template(
        validate_content(json.dumps(blocks)), subject=subject, preheader=preheader, theme=theme
    )


def kitchen_sink() -> list[dict[str, Any]]:
    """Every block type, plus one block hidden on mobile and one hidden on desktop (found by
    their CSS classes `probe-hidden-mobile` / `probe-hidden-desktop`)."""
    return [
        *(copy.deepcopy(block) for block in SAMPLES.values()),
        text_block(
            "<p>Desktop only</p>", "probe-1", hideOnMobile=True, cssClass="probe-hidden-mobile"
        ),
        text_block(
            "<p>Mobile only</p>", "probe-2", hideOnDesktop=True, cssClass="probe-hidden-desktop"
        ),
    ]
