"""The deployment over ASGI (Starlette): the HTTP function API, the sync WebSocket, file
storage and HTTP actions.

`create_app(application, authenticator)` builds the client API; `create_server_app(...)`
serves it together with the site port (HTTP actions), as `owlat dev` / `owlat serve` do,
with uvicorn configured by `server_config(app, ConnectionLimits(...))` (connections.py)
and, at the root of the site port, a built web app (`WebApp`, web_app.py).
"""

from __future__ import annotations

from owlat.runtime.server.app import (
    PortRouter,
    create_app,
    create_server_app,
    create_site_app,
    listen_socket,
)
from owlat.runtime.server.connections import ConnectionLimits, server_config
from owlat.runtime.server.operations import Operations
from owlat.runtime.server.web_app import WebApp

__all__ = [
    "ConnectionLimits",
    "Operations",
    "PortRouter",
    "WebApp",
    "create_app",
    "create_server_app",
    "create_site_app",
    "listen_socket",
    "server_config",
]
