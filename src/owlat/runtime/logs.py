"""Log lines of a function call: what it `print`s or logs comes back as `logLines`.

While a function runs, a context variable holds its `LogBuffer`. `sys.stdout` is wrapped
once (by `install`) in a router that writes into the current buffer when there is one and
to the real stdout otherwise; a logging handler does the same for log records. Lines are
`"[LEVEL] text"` with LEVEL one of LOG, INFO, WARN, ERROR, DEBUG, as Convex sends them;
at most 256 lines of 4 KiB are kept per call.

The server's own log: once a call ends, `publish` logs its lines (logger `owlat.functions`,
INFO) with the function's path as the record's `function`, and keeps them in `recent`, the
process's last RECENT_LINES lines (the data browser tails them); every record made while an HTTP
request is served carries its `request_id` (set by the server, also in error messages).
`JsonFormatter` writes records as one JSON object per line (`owlat serve --log-format json`).
"""

from __future__ import annotations

import io
import itertools
import logging
import secrets
import sys
import time
from collections import deque
from contextvars import ContextVar, Token
from typing import TextIO

import orjson

MAX_LINES = 256
MAX_LINE_BYTES = 4096
RECENT_LINES = 1000

_LEVELS = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "CRITICAL": "ERROR",
}


class LogBuffer(list[str]):
    """The log lines of one function call: a list of them, so that making one (one per
    function call) runs no Python code; the attributes below are class defaults until a
    call logs something."""

    _partial = ""  # written without a newline yet
    truncated = False  # lines were dropped (more than MAX_LINES)

    def add(self, level: str, text: str) -> None:
        if len(self) >= MAX_LINES:
            self.truncated = True
            return
        line = f"[{level}] {text}"
        if len(line.encode()) > MAX_LINE_BYTES:
            line = line.encode()[: MAX_LINE_BYTES - 3].decode(errors="ignore") + "..."
        self.append(line)

    def write(self, text: str) -> None:
        self._partial += text
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            self.add("LOG", line)

    def finish(self) -> tuple[str, ...]:
        if self._partial:
            self.add("LOG", self._partial)
            self._partial = ""
        return tuple(self)


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

    # a class default, no __init__: one call fewer per function call
    _token: Token[LogBuffer | None] | None = None

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


# -- the server's log ----------------------------------------------------------------------

function_logger = logging.getLogger("owlat.functions")
current_request_id: ContextVar[str | None] = ContextVar("owlat_request_id", default=None)


def request_id() -> str:
    """The id of the request being served (an error message and the log lines of the
    request share it), or a fresh one outside a request."""
    return current_request_id.get() or new_request_id()


_REQUEST_ID_PREFIX = secrets.token_hex(4)  # this process's, then a counter: unique, cheap
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    """A new id, 16 hex digits, unique across processes (its first 8 are random per
    process) without drawing random bytes per request."""
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers) & 0xFFFFFFFF:08x}"


class RecentLines:
    """The last `size` published lines, each numbered (1, 2, ...) so a reader can ask for
    the lines after the last one it saw."""

    def __init__(self, size: int) -> None:
        self._lines: deque[tuple[int, float, str, str]] = deque(maxlen=size)
        self._last = 0

    def add(self, path: str, lines: tuple[str, ...]) -> None:
        now = time.time()
        for line in lines:
            self._last += 1
            self._lines.append((self._last, now, path, line))

    def after(self, seq: int, limit: int) -> list[dict[str, object]]:
        """Up to `limit` of the newest lines numbered above `seq`, oldest first."""
        newer = [entry for entry in self._lines if entry[0] > seq][-limit:]
        return [
            {"seq": number, "time": at, "function": path, "line": line}
            for number, at, path, line in newer
        ]


recent = RecentLines(RECENT_LINES)


def publish(path: str, lines: tuple[str, ...]) -> None:
    """Log a finished call's lines to the server's log, attributed to `path`, and keep them
    in `recent` (the lines of a call nested in another are published with the outer call's)."""
    if _current.get() is not None:
        return
    recent.add(path, lines)
    if not function_logger.isEnabledFor(logging.INFO):
        return
    for line in lines:
        function_logger.info("%s", line, extra={"function": path})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, and when
    known requestId and function; exception text under `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = current_request_id.get()
        if request:
            entry["requestId"] = request
        function = getattr(record, "function", None)
        if function:
            entry["function"] = function
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()
