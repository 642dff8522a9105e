"""The error of a refused template: `INVALID_CONTENT`, with the path of the offending value."""

from __future__ import annotations

from owlat.app.lib.errors import AppError, AppErrorKind


class InvalidContent(AppError):
    """`content[3].columns[1][0].url: must be an http(s), mailto: or tel: URL`: the message
    is the path, a colon and the reason; both are kept apart for callers that show them."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(AppErrorKind.VALIDATION, "INVALID_CONTENT", f"{path}: {reason}")
        self.path = path
        self.reason = reason
