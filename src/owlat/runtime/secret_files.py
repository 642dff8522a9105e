"""Secrets kept as small files in the data folder (admin key, storage signing key, ...).

A secret file is created once, readable by its owner only (0600), with O_EXCL so that two
processes starting together agree on one value; an empty file is an operator error rather
than a silently regenerated secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from owlat.runtime.errors import OperatorError


def read_secret(path: Path) -> str | None:
    """The secret stored at `path`, or None when the file does not exist yet."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not text:
        raise OperatorError(f"{path} is empty; delete it to generate a new secret")
    return text


def load_or_create_secret(path: Path, generate: Callable[[], str]) -> str:
    """The secret at `path`, created with `generate()` (owner-only) if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = read_secret(path)
        assert existing is not None
        return existing
    secret = generate()
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(secret + "\n")
    return secret
