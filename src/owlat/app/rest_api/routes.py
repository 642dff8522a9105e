"""The REST API v1 route table: `register(http)` adds it to the app's router.

Besides the endpoints: OPTIONS on any v1 path answers the CORS preflight, and any other
v1 request gets a JSON 404 (unknown path) or 405 `Method not allowed` (known path).
"""

from __future__ import annotations

import datetime
import re

from starlette.requests import Request
from starlette.responses import Response

from owlat.app.lib.api_key_auth import api_error
from owlat.app.rest_api import contacts, events, openapi, topics, transactional
from owlat.app.rest_api.wire import iso, preflight, unauthenticated
from owlat.runtime import ActionCtx, HttpRouter, JSONResponse

V1 = "/api/v1"
_KNOWN_PATHS = re.compile(
    r"^/(?:health|openapi\.json|contacts|contacts/[^/]+|events|transactional"
    r"|(?:topics|mailing-lists)/[^/]+/contacts(?:/[^/]+)?)$"
)


async def _health(ctx: ActionCtx, request: Request) -> Response:
    now = datetime.datetime.now(tz=datetime.UTC).timestamp() * 1000
    return JSONResponse({"status": "ok", "timestamp": iso(now)})


async def _unrouted(ctx: ActionCtx, request: Request) -> Response:
    path = request.url.path
    rest = path[path.find(V1) + len(V1) :]
    if _KNOWN_PATHS.match(rest):
        return JSONResponse({"error": {"message": "Method not allowed"}}, status_code=405)
    return api_error("not_found", "Not found", 404)


EXACT = (
    ("/health", "GET", unauthenticated(_health)),
    ("/openapi.json", "GET", unauthenticated(openapi.document)),
    ("/contacts", "GET", contacts.list_endpoint),
    ("/contacts", "POST", contacts.create_endpoint),
    ("/events", "POST", events.send_endpoint),
    ("/transactional", "POST", transactional.send_endpoint),
)
PREFIXED = (
    ("/contacts/", "GET", contacts.get_endpoint),
    ("/contacts/", "PUT", contacts.update_endpoint),
    ("/contacts/", "DELETE", contacts.delete_endpoint),
    *(
        route
        for spelling in ("/topics/", "/mailing-lists/")
        for route in (
            (spelling, "POST", topics.subscribe_endpoint),
            (spelling, "DELETE", topics.unsubscribe_endpoint),
        )
    ),
)


def register(http: HttpRouter) -> None:
    for path, method, handler in EXACT:
        http.route(path=V1 + path, method=method, handler=handler)
    for prefix, method, handler in PREFIXED:
        http.route(path_prefix=V1 + prefix, method=method, handler=handler)
    http.route(path_prefix=V1 + "/", method="OPTIONS", handler=preflight)
    fallback = unauthenticated(_unrouted)
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        http.route(path_prefix=V1 + "/", method=method, handler=fallback)
