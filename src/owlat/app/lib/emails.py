"""Email addresses: normalized as `trim().lower()`, valid if RFC-ish and ≤ 254 characters."""

from __future__ import annotations

import re

from owlat.app.lib.errors import invalid

MAX_LENGTH = 254
_PATTERN = re.compile(r"^[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+\.[^\s@<>()\[\],;:\"]+$")


def normalize_email(email: str) -> str:
    """The normalized address, or the error "Invalid email"."""
    normalized = email.strip().lower()
    if len(normalized) > MAX_LENGTH or not _PATTERN.match(normalized):
        raise invalid("INVALID_EMAIL", "Invalid email")
    return normalized
