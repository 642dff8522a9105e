"""Server-side email rendering (pure functions, no I/O).

`validate_content` checks a template's blocks on save; `render_template` turns them into a
`RenderedTemplate` (HTML, text, subject, preheader, with placeholders) once per template or
send; `compile_template` + `personalize` fill it in for each recipient; `contact_variables`
gives a contact's variables (fields and custom properties).
"""

from __future__ import annotations

from owlat.app.lib.rendering.blocks import Block, validate_content
from owlat.app.lib.rendering.errors import InvalidContent
from owlat.app.lib.rendering.html import RenderedTemplate, render_template
from owlat.app.lib.rendering.personalize import (
    CompiledTemplate,
    Message,
    compile_template,
    contact_variables,
    personalize,
)
from owlat.app.lib.rendering.sanitize import sanitize_html
from owlat.app.lib.rendering.theme import Theme

__all__ = [
    "Block",
    "CompiledTemplate",
    "InvalidContent",
    "Message",
    "RenderedTemplate",
    "Theme",
    "compile_template",
    "contact_variables",
    "personalize",
    "render_template",
    "sanitize_html",
    "validate_content",
]
