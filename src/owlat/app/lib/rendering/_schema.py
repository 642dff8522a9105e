"""The fields of each of the 17 block types (upstream's `EditorBlock` content, §8.1).

`COMMON` holds what every block may carry (spacing, border, background, dark-mode colours,
responsive visibility, full width, CSS classes, condition, repeat). Dark-mode overrides are
upstream's `darkMode` object (`DARK_MODE`; an image's also takes a `src`); the older flat
fields `darkBackgroundColor`, `darkTextColor` and an image's `darkSrc` are read as its keys
(`blocks.py` folds them in). Child blocks (columns,
container and hero items, accordion sections) are walked by `blocks.py`, not listed here.
"""

from __future__ import annotations

from owlat.app.lib.rendering._fields import (
    IMAGE_SCHEMES,
    Choice,
    Classes,
    Color,
    Condition,
    Field,
    Flag,
    Font,
    Gradient,
    Html,
    Ident,
    Items,
    Length,
    Number,
    Record,
    Repeat,
    Sizes,
    SrcSet,
    Text,
    Url,
)

MAX_RAW_HTML_CHARS = 100_000  # Gmail clips a message past ~102 KB of HTML

SOCIAL_PLATFORMS = {
    "twitter": "X",
    "facebook": "Facebook",
    "instagram": "Instagram",
    "linkedin": "LinkedIn",
    "youtube": "YouTube",
    "tiktok": "TikTok",
    "github": "GitHub",
    "whatsapp": "WhatsApp",
    "telegram": "Telegram",
    "threads": "Threads",
    "pinterest": "Pinterest",
    "discord": "Discord",
    "mastodon": "Mastodon",
    "bluesky": "Bluesky",
    "vimeo": "Vimeo",
    "medium": "Medium",
    "snapchat": "Snapchat",
}

_SPACE = Number(0, 300)
_BORDER_STYLE = Choice("solid", "dashed", "dotted", "none")
_ALIGN = Choice("left", "center", "right")
_VALIGN = Choice("top", "middle", "bottom")
_TRANSFORM = Choice("none", "uppercase", "lowercase", "capitalize")
_FONT_SIZE = Number(1, 200)
_FONT_WEIGHT = Number(100, 900)
_WIDTH = Number(1, 4000)
_IMAGE = Url(IMAGE_SCHEMES)
_BACKGROUND = Url(IMAGE_SCHEMES, placeholders=False)
DARK_MODE: dict[str, Field] = {  # `color` is read as `textColor` (the editor's other name)
    "backgroundColor": Color(),
    "textColor": Color(),
    "color": Color(),
    "borderColor": Color(),
    "linkColor": Color(),
}

COMMON: dict[str, Field] = {
    **{f"padding{side}": _SPACE for side in ("Top", "Right", "Bottom", "Left")},
    **{f"margin{side}": _SPACE for side in ("Top", "Right", "Bottom", "Left")},
    "paddingLinked": Flag(),
    "backgroundColor": Color(),
    "blockBackgroundColor": Color(),
    "borderRadius": _SPACE,
    "borderWidth": Number(0, 50),
    "borderColor": Color(),
    "borderStyle": _BORDER_STYLE,
    "darkBackgroundColor": Color(),
    "darkTextColor": Color(),
    "darkMode": Record(DARK_MODE),
    "hideOnMobile": Flag(),
    "hideOnDesktop": Flag(),
    "fullWidth": Flag(),
    "cssClass": Classes(),
    "condition": Condition(),
    "repeat": Repeat(),
    "backgroundGradient": Gradient(),
}

_TYPOGRAPHY: dict[str, Field] = {
    "fontSize": _FONT_SIZE,
    "fontFamily": Font(),
    "fontWeight": _FONT_WEIGHT,
    "letterSpacing": Number(-20, 100),
    "textTransform": _TRANSFORM,
}

_COLUMN_STYLE = Record(
    {
        "backgroundColor": Color(),
        **{f"padding{side}": _SPACE for side in ("Top", "Right", "Bottom", "Left")},
        "verticalAlign": _VALIGN,
        "borderWidth": Number(0, 50),
        "borderColor": Color(),
        "borderStyle": _BORDER_STYLE,
        "borderRadius": _SPACE,
        "backgroundImage": _BACKGROUND,
        "backgroundPosition": Choice("top", "center", "bottom", "left", "right"),
        "backgroundSize": Choice("cover", "contain", "auto"),
        "stackOnMobile": Flag(),
    }
)

_CELL = Record(
    {
        "content": Html(required=True),
        "colSpan": Number(1, 20, integer=True),
        "rowSpan": Number(1, 100, integer=True),
        "textAlign": _ALIGN,
        "backgroundColor": Color(),
        "fontWeight": _FONT_WEIGHT,
    }
)

FIELDS: dict[str, dict[str, Field]] = {
    "text": {
        "html": Html(required=True),
        "blockType": Choice("paragraph", "h1", "h2", "h3"),
        "textColor": Color(),
        "textAlign": Choice("left", "center", "right", "justify"),
        "lineHeight": Number(0.5, 10),
        "textDecoration": Choice("none", "underline", "line-through"),
        "mobileFontSize": _FONT_SIZE,
        **_TYPOGRAPHY,
    },
    "image": {
        "src": Url(IMAGE_SCHEMES, required=True),
        "alt": Text(1_000),
        "width": _WIDTH,
        "align": _ALIGN,
        "decorative": Flag(),
        "storageId": Ident(),
        "mediaAssetId": Ident(),
        "darkStorageId": Ident(),
        "darkMediaAssetId": Ident(),
        "linkUrl": Url(),
        "height": _WIDTH,
        "title": Text(1_000),
        "fluidOnMobile": Flag(),
        "srcset": SrcSet(),
        "sizes": Sizes(),
        "darkSrc": _IMAGE,
        "darkMode": Record({**DARK_MODE, "src": _IMAGE}),
    },
    "button": {
        "text": Text(500, required=True),
        "url": Url(required=True),
        "textColor": Color(),
        "align": Choice("left", "center", "right", "full"),
        "paddingX": Number(0, 200),
        "paddingY": Number(0, 200),
        "buttonBorderWidth": Number(0, 50),
        "buttonBorderColor": Color(),
        "buttonBorderStyle": _BORDER_STYLE,
        "buttonWidth": Length(),
        "target": Choice("_blank", "_self"),
        **_TYPOGRAPHY,
    },
    "divider": {
        "color": Color(),
        "thickness": Number(1, 50),
        "width": Number(1, 100),
        "style": Choice("solid", "dashed", "dotted"),
        "align": _ALIGN,
    },
    "spacer": {"height": Number(0, 1000)},
    "columns": {
        "columnCount": Number(1, 4, integer=True),
        "ratio": Choice("equal", "left-wide", "right-wide", "left-narrow", "right-narrow"),
        "mobileStacking": Flag(),
        "verticalAlign": _VALIGN,
        "columnGap": Number(0, 100),
        "columnStyles": Items(_COLUMN_STYLE, max_items=4),
        "direction": Choice("ltr", "rtl"),
        "mobileStackOrder": Choice("normal", "reverse"),
    },
    "container": {
        "maxWidth": Number(50, 4000),
        "backgroundImage": _BACKGROUND,
        "backgroundPosition": Choice("top", "center", "bottom"),
        "backgroundSize": Choice("cover", "contain"),
    },
    "hero": {
        "backgroundImage": _BACKGROUND,
        "backgroundPosition": Choice("top", "center", "bottom"),
        "backgroundSize": Choice("cover", "contain"),
        "height": Number(20, 2000),
        "mode": Choice("fixed-height", "fluid-height"),
        "verticalAlign": _VALIGN,
        "overlayColor": Color(),
    },
    "social": {
        "links": Items(
            Record(
                {
                    "platform": Choice(*SOCIAL_PLATFORMS, required=True),
                    "url": Url(required=True),
                    "enabled": Flag(),
                    "iconUrl": _IMAGE,
                }
            ),
            max_items=len(SOCIAL_PLATFORMS) * 2,
            required=True,
        ),
        "iconStyle": Choice("filled", "outline"),
        "align": _ALIGN,
        "iconSize": Number(8, 128),
        "iconSpacing": Number(0, 100),
        "iconColor": Color(),
        "mode": Choice("horizontal", "vertical"),
        "showLabels": Flag(),
    },
    "table": {
        "headers": Items(Html(2_000), max_items=20),
        "rows": Items(Items(Html(5_000), max_items=20), max_items=200),
        "headerBackgroundColor": Color(),
        "headerTextColor": Color(),
        "striped": Flag(),
        "stripeColor": Color(),
        "cellPadding": Number(0, 100),
        "textAlign": _ALIGN,
        "columns": Items(Record({"width": Length(), "textAlign": _ALIGN}), max_items=20),
        "cells": Items(Items(_CELL, max_items=20), max_items=200),
        "footerRow": Items(Html(2_000), max_items=20),
        "captionText": Text(1_000),
        "responsiveMode": Choice("default", "stack", "scroll", "hide-columns"),
        "hideOnMobileColumns": Items(Number(0, 19, integer=True), max_items=20),
    },
    "rawHtml": {"html": Html(MAX_RAW_HTML_CHARS, required=True)},
    "video": {
        "thumbnailUrl": Url(IMAGE_SCHEMES, required=True),
        "videoUrl": Url(required=True),
        "alt": Text(1_000),
        "width": _WIDTH,
        "align": _ALIGN,
        "playButtonColor": Color(),
        "playButtonSize": Number(16, 200),
    },
    "accordion": {
        "allowMultiple": Flag(),
        "initialExpanded": Number(-1, 100, integer=True),
        "headerBackgroundColor": Color(),
        "headerTextColor": Color(),
        "headerFontSize": _FONT_SIZE,
        "contentBackgroundColor": Color(),
        "iconColor": Color(),
        "sectionBorderColor": Color(),
    },
    "menu": {
        "items": Items(
            Record({"label": Text(200, required=True), "url": Url(required=True)}),
            max_items=20,
            required=True,
        ),
        "align": _ALIGN,
        "textColor": Color(),
        "itemSpacing": Number(0, 100),
        "separator": Text(5),
        "separatorColor": Color(),
        "hamburgerOnMobile": Flag(),
        **_TYPOGRAPHY,
    },
    "carousel": {
        "images": Items(
            Record(
                {
                    "src": Url(IMAGE_SCHEMES, required=True),
                    "alt": Text(1_000),
                    "linkUrl": Url(),
                    "thumbnailSrc": _IMAGE,
                }
            ),
            max_items=20,
            min_items=1,
            required=True,
        ),
        "iconWidth": Number(4, 64),
        "iconColor": Color(),
        "iconInactiveColor": Color(),
        "thumbnailWidth": Number(0, 300),
    },
    "list": {
        "items": Items(Html(5_000), max_items=200, required=True),
        "listType": Choice("bullet", "numbered", "check", "icon"),
        "bulletColor": Color(),
        "bulletSize": _FONT_SIZE,
        "iconUrl": _IMAGE,
        "fontSize": _FONT_SIZE,
        "textColor": Color(),
        "itemSpacing": Number(0, 100),
    },
    "progressBar": {
        "value": Number(0, 1e12, required=True),
        "maxValue": Number(1e-9, 1e12),
        "barColor": Color(),
        "trackColor": Color(),
        "height": Number(1, 100),
        "showLabel": Flag(),
        "labelPosition": Choice("inside", "right"),
        "labelColor": Color(),
        "labelFontSize": _FONT_SIZE,
    },
}

BLOCK_TYPES = tuple(FIELDS)
COLUMN_ITEM_TYPES = ("text", "image", "button", "divider", "spacer")
CONTAINER_ITEM_TYPES = (*COLUMN_ITEM_TYPES, "columns", "social", "container")
SCHEMAS: dict[str, dict[str, Field]] = {kind: {**COMMON, **own} for kind, own in FIELDS.items()}
SAVED_BLOCK_REF = Record(
    {"blockId": Ident(required=True), "groupId": Ident(), "blockName": Text(200)}
)
