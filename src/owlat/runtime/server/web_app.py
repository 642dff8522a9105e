"""A built single-page web app (Vite's output folder) on the site port, beside the HTTP actions.

The rule, in order, for a request on the site port:

1. **The HTTP router first.** A path and method an HTTP action is routed for never reaches
   the web app, so `/api/auth/*`, `/api/v1/*`, `/unsubscribe` ... keep their paths.
2. Otherwise a GET or HEAD of **a file of the build** (`/assets/index-3f2a91.js`,
   `/favicon.svg`) is that file. Files under `/assets/` carry a content hash in their name
   and are cached for a year (`immutable`); others must be revalidated. Dot-files, and
   paths that would leave the folder (`..`, encoded or not), are not files of the build.
3. Otherwise a GET or HEAD of **a client-side route** (`/`, `/contacts/k57a...`: outside
   `/api/`, no file extension in its last segment) is `index.html`, with each
   `<meta name="NAME" content="">` of `meta` filled in (how the page learns, say, where the
   client API listens) and the security headers of `headers`.
4. Anything else is the router's 404 (`No HttpAction routed for ...`).

A folder without `index.html` (the app was never built) answers step 3 with a 503 page
that says so. `index.html` is read on each request, so a rebuild shows without a restart.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
NOT_BUILT = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Not built</title>"
    "<p>The web app is not built: {folder} has no index.html.</p></html>"
)


class WebApp:
    """Serves the build in `directory` (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        *,
        meta: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        not_built: str = NOT_BUILT,
    ) -> None:
        self.directory = Path(directory).resolve()
        self.meta = dict(meta or {})
        self.headers = dict(headers or {})
        self.not_built = not_built

    def response(self, request: Request, path: str) -> Response | None:
        """The answer for a request no HTTP action is routed for, or None (the router's 404)."""
        if request.method not in ("GET", "HEAD"):
            return None
        file = self._file(path)
        if file is not None:
            cache = _IMMUTABLE if path.startswith("/assets/") else _REVALIDATE
            return FileResponse(file, headers={"cache-control": cache})
        last = path.rsplit("/", 1)[-1]
        if path == "/api" or path.startswith("/api/") or "." in last:
            return None
        return self._index()

    def _file(self, path: str) -> Path | None:
        parts = PurePosixPath(path).parts[1:]  # without the leading "/"
        if not parts or any(p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
            return None  # "..", dot-files and backslashes never name a file of the build
        candidate = self.directory.joinpath(*parts)
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(self.directory) or not resolved.is_file():
            return None
        return resolved

    def _index(self) -> Response:
        headers = {"cache-control": _REVALIDATE, **self.headers}
        try:
            page = (self.directory / "index.html").read_text(encoding="utf-8")
        except FileNotFoundError:
            text = self.not_built.format(folder=html.escape(str(self.directory)))
            return HTMLResponse(text, status_code=503, headers=headers)
        for name, value in self.meta.items():
            page = _fill_meta(page, name, value)
        return HTMLResponse(page, headers=headers)


def _fill_meta(page: str, name: str, value: str) -> str:
    """`<meta name="name" content="">` with `value` (HTML-escaped) as its content."""
    pattern = re.compile(rf'(<meta\s+name="{re.escape(name)}"\s+content=")[^"]*(")')
    return pattern.sub(lambda m: m.group(1) + html.escape(value, quote=True) + m.group(2), page)
