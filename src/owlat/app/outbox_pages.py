"""The local outbox in a browser, on the site port, for development only:

    GET /dev/outbox              the `.eml` files of `<data dir>/outbox`, newest first
                                 (date, from, to, subject; the newest `LISTED`)
    GET /dev/outbox/<name>       one message: its headers, its text, and its HTML in a
                                 sandboxed iframe
    GET /dev/outbox/<name>/html  that HTML alone, under a CSP that sandboxes it, runs no
                                 script and loads nothing but images and inline styles

Served only by `owlat dev` (`Instance.development`); `owlat serve` answers 404 as for any
unknown path. No sign-in: the outbox holds every organization's mail and the auth mails
(password-reset and invitation links), so `owlat dev` must not be reachable from a network
you do not trust. Every value shown is HTML-escaped; names other than the outbox's own
(`<20 digits>-<key>`) are 404, so no path leaves the folder.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from owlat.app.lib.instance import current
from owlat.runtime import ActionCtx, HttpAction, http_action

PREFIX = "/dev/outbox"
LISTED = 200
_NAME = re.compile(r"^\d{20}-[A-Za-z0-9_-]{1,120}$")
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;"
    "width:100%}td,th{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd;"
    "vertical-align:top}pre{white-space:pre-wrap;background:#f6f6f6;padding:.8rem}"
    "iframe{width:100%;height:70vh;border:1px solid #ccc}.muted{color:#666}"
)
_PAGE_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'",
}
_MESSAGE_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-frame-options": "SAMEORIGIN",
    "x-content-type-options": "nosniff",
    "content-security-policy": (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data: https: http:; "
        "font-src data:; frame-ancestors 'self'"
    ),
}


def e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, status: int = 200) -> Response:
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{e(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_PAGE_HEADERS)


def _not_found() -> Response:
    return _page("Not found", "<p>No such message in the outbox.</p>", 404)


def _read(path: Path) -> EmailMessage:
    message: EmailMessage = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return message


def _read_named(path: Path) -> EmailMessage | None:
    return _read(path) if path.is_file() else None


def _listing(folder: Path) -> list[tuple[str, EmailMessage]]:
    if not folder.is_dir():
        return []
    names = sorted((p for p in folder.glob("*.eml") if _NAME.match(p.stem)), reverse=True)
    return [(path.stem, _read(path)) for path in names[:LISTED]]


def _part(message: EmailMessage, subtype: str) -> str | None:
    body = message.get_body((subtype,))
    return None if body is None else str(body.get_content())


async def _list_page(folder: Path) -> Response:
    messages = await asyncio.to_thread(_listing, folder)
    if not messages:
        return _page("Outbox", f'<p class="muted">No messages in {e(folder)} yet.</p>')
    rows = "".join(
        f"<tr><td>{e(m.get('Date', ''))}</td><td>{e(m.get('From', ''))}</td>"
        f'<td>{e(m.get("To", ""))}</td><td><a href="{PREFIX}/{e(name)}">'
        f"{e(m.get('Subject', '') or '(no subject)')}</a></td></tr>"
        for name, m in messages
    )
    body = (
        f'<p class="muted">{len(messages)} newest of {e(folder)}</p><table><tr><th>Date</th>'
        f"<th>From</th><th>To</th><th>Subject</th></tr>{rows}</table>"
    )
    return _page("Outbox", body)


async def _message_page(name: str, message: EmailMessage) -> Response:
    headers = "".join(
        f"<tr><th>{e(key)}</th><td>{e(value)}</td></tr>" for key, value in message.items()
    )
    text = _part(message, "plain")
    parts = [f'<p><a href="{PREFIX}">← Outbox</a></p><table>{headers}</table>']
    if _part(message, "html") is not None:
        parts.append(f'<h2>HTML</h2><iframe sandbox src="{PREFIX}/{e(name)}/html"></iframe>')
    if text is not None:
        parts.append(f"<h2>Text</h2><pre>{e(text)}</pre>")
    return _page(str(message.get("Subject", "") or "(no subject)"), "".join(parts))


@http_action
async def outbox(ctx: ActionCtx, request: Request) -> Response:
    instance = current()
    if not instance.development:
        return Response("Not found", status_code=404, media_type="text/plain")
    folder = instance.outbox_dir
    rest = request.url.path.removeprefix(PREFIX).strip("/")
    if not rest:
        return await _list_page(folder)
    name, _, part = rest.partition("/")
    if not _NAME.match(name) or part not in ("", "html"):
        return _not_found()
    message = await asyncio.to_thread(_read_named, folder / f"{name}.eml")
    if message is None:
        return _not_found()
    if part == "html":
        html_part = _part(message, "html")
        if html_part is None:
            return _not_found()
        return HTMLResponse(html_part, headers=_MESSAGE_HEADERS)
    return await _message_page(name, message)


def routes() -> list[tuple[str, str, HttpAction]]:
    """(path or prefix, method, handler) of the outbox pages."""
    return [(PREFIX, "GET", outbox), (PREFIX + "/", "GET", outbox)]
