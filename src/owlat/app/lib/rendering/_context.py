"""What block renderers share: the theme, the width available at this level, whether the
block sits on the page background (then its text follows the dark palette in dark mode), and
the collector of per-block CSS rules (mobile and dark mode) that go into the `<style>`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from owlat.app.lib.rendering.theme import Theme
from owlat.app.lib.rendering.variables import escape

TABLE = 'role="presentation" cellpadding="0" cellspacing="0" border="0"'


@dataclass
class Rules:
    """CSS collected while rendering: rules for the mobile media query and for dark mode."""

    mobile: list[str] = field(default_factory=list)
    dark: list[str] = field(default_factory=list)
    outlook_dark: list[str] = field(default_factory=list)
    count: int = 0

    def new_class(self) -> str:
        self.count += 1
        return f"owlat-b{self.count}"


@dataclass(frozen=True)
class Context:
    theme: Theme
    width: float
    rules: Rules
    on_page: bool = True

    def inside(self, width: float, *, on_page: bool | None = None) -> Context:
        """The context of a block's content: narrower, maybe on a background of its own."""
        return replace(
            self, width=max(width, 20.0), on_page=self.on_page if on_page is None else on_page
        )


def px(value: float) -> str:
    """`12px`, `2.5px`, `0` for zero."""
    if value == 0:
        return "0"
    return f"{int(value)}px" if value == int(value) else f"{value:.2f}".rstrip("0") + "px"


def num(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.2f}".rstrip("0")


def style(*pairs: tuple[str, str | None]) -> str:
    """A style attribute value from (property, value) pairs, skipping empty values; escaped
    for a double-quoted attribute."""
    return escape(";".join(f"{name}:{value}" for name, value in pairs if value))


def attr(value: str) -> str:
    """A double-quoted attribute value (placeholders kept)."""
    return escape(value)
