"""The email theme: brand colours, font and widths, from an organization's settings.

Organization settings store `brandTheme` {primaryColor, backgroundColor, textColor, logoUrl};
upstream's `emailTheme` adds fontFamily and baseWidth. Absent keys take upstream's defaults
(primary #c4785a, Arial, white background, 600 px wide, 480 px mobile breakpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from owlat.app.lib.rendering._fields import Color, Font, Number


@dataclass(frozen=True)
class Theme:
    primary_color: str = "#c4785a"
    background_color: str = "#ffffff"
    text_color: str = "#1f2937"
    link_color: str = "#2563eb"
    font_family: str = "Arial, sans-serif"
    base_width: int = 600
    breakpoint: int = 480
    dark_background_color: str = "#121212"
    dark_text_color: str = "#e4e4e7"
    dark_link_color: str = "#93c5fd"

    @classmethod
    def from_settings(cls, brand_theme: Mapping[str, Any] | None) -> Theme:
        """The theme of a `brandTheme`/`emailTheme` mapping; unknown keys are ignored, bad
        values raise `InvalidContent` (path `theme.<key>`)."""
        theme = brand_theme or {}
        values: dict[str, Any] = {}
        for key, attribute in _COLORS.items():
            if theme.get(key):
                values[attribute] = Color().check(theme[key], f"theme.{key}")
        if theme.get("fontFamily"):
            values["font_family"] = Font().check(theme["fontFamily"], "theme.fontFamily")
        if theme.get("baseWidth") is not None:
            width = Number(320, 1200, integer=True).check(theme["baseWidth"], "theme.baseWidth")
            values["base_width"] = int(width)
        return cls(**values)


_COLORS = {
    "primaryColor": "primary_color",
    "backgroundColor": "background_color",
    "textColor": "text_color",
    "linkColor": "link_color",
}
