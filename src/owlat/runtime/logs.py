"""Log lines of a function call: what it `print`s or logs comes back as `logLines`.

While a function runs, a context variable holds its `LogBuffer`. `sys.stdout` is wrapped
once (by `install`) in a router that writes into the current buffer when there is one and
to the real stdout otherwise; a logging handler does the same for log records. Lines are
`"[LEVEL] text"` with LEVEL one of LOG, INFO, WARN, ERROR, DEBUG, as Convex sends them;
at most 256 lines of 4 KiB are kept per call.
"""

from __future__ import annotations

import io
import logging
import sys
from contextvars import ContextVar, Token
from typing import TextIO

MAX_LINES = 256
MAX_LINE_BYTES = 4096

_LEVELS = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "CRITICAL": "ERROR",
}


class LogBuffer:
    """The log lines of one function call."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial = ""
        self.truncated = False

    def add(self, level: str, text: str) -> None:
        if len(self.lines) >= MAX_LINES:
            self.truncated = True
            return
        line = f"[{level}] {text}"
        if len(line.encode()) > MAX_LINE_BYTES:
            line = line.encode()[: MAX_LINE_BYTES - 3].decode(errors="ignore") + "..."
        self.lines.append(line)

    def write(self, text: str) -> None:
        self._partial += text
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            self.add("LOG", line)

    def finish(self) -> tuple[str, ...]:
        if self._partial:
            self.add("LOG", self._partial)
            self._partial = ""
        return tuple(self.lines)


_current: ContextVar[LogBuffer | None] = ContextVar("owlat_log_buffer", default=None)


class _StdoutRouter(io.TextIOBase):
    def __init__(self, target: TextIO) -> None:
        self.target = target

    def write(self, text: str) -> int:
        buffer = _current.get()
        if buffer is None:
            return self.target.write(text)
        buffer.write(text)
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def writable(self) -> bool:
        return True


class _LogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        buffer = _current.get()
        if buffer is not None:
            buffer.add(_LEVELS.get(record.levelname, "LOG"), record.getMessage())


_handler = _LogHandler()


def install() -> None:
    """Route `print` and logging of function calls into their log buffers (idempotent)."""
    if not isinstance(sys.stdout, _StdoutRouter):
        sys.stdout = _StdoutRouter(sys.stdout)
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)


class capture:
    """Collect the log lines of the code run inside the block (nested calls share them)."""

    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token: Token[LogBuffer | None] | None = None

    def __enter__(self) -> LogBuffer:
        existing = _current.get()
        if existing is not None:
            return existing
        if not isinstance(sys.stdout, _StdoutRouter):
            sys.stdout = _StdoutRouter(sys.stdout)  # someone (a test runner) replaced it
        buffer = LogBuffer()
        self._token = _current.set(buffer)
        return buffer

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
