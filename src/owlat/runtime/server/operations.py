"""Health and metrics endpoints, on both ports (before the app's own routes):

GET /healthz   200 {"status": "ok"}: the process serves HTTP
GET /readyz    200 when the database answers (within READY_TIMEOUT s), the schema is in
               place and the scheduler runs (or is off in this process); otherwise 503,
               and 503 while the server drains for a graceful stop. The body names each
               check: {"status": "ready"|"unready", "checks": {"database": "ok", ...}}
GET /metrics   the Prometheus text format (metrics.py), for the admin key or the metrics
               token as `Authorization: Bearer <key>`; 401 without, 404 when metrics
               are off
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from owlat.runtime.application import Application
from owlat.runtime.auth import Authenticator
from owlat.runtime.metrics import CONTENT_TYPE
from owlat.runtime.server.outcome import json_response
from owlat.runtime.sync.worker import SyncService

READY_TIMEOUT = 2.0


class Operations:
    """`/healthz`, `/readyz` and `/metrics` of one Application."""

    def __init__(
        self, application: Application, authenticator: Authenticator, metrics_token: str = ""
    ) -> None:
        self.application = application
        self.authenticator = authenticator
        self.metrics_token = metrics_token
        self.draining = False  # set by a graceful stop: /readyz answers 503 from then on
        self.sync: SyncService | None = None  # the sync sockets' service, once routed

    async def drain(self, grace: float) -> None:
        """Stop taking work and finish what was started (see the module docstring)."""
        self.draining = True
        steps = [self.application.drain(grace)]
        if self.sync is not None:
            steps.append(self.sync.drain(grace))
        await asyncio.gather(*steps)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/healthz", self.healthz, methods=["GET", "HEAD"]),
            Route("/readyz", self.readyz, methods=["GET", "HEAD"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"}, 200)

    async def readyz(self, request: Request) -> Response:
        checks = {
            "database": await self._database(),
            "schema": "ok" if self.application.started else "not ready",
            "scheduler": {"running": "ok", "off": "off"}.get(
                self.application.scheduler_state, "stopped"
            ),
        }
        if self.draining:
            checks["server"] = "draining"
        ready = all(state in ("ok", "off") for state in checks.values())
        return json_response(
            {"status": "ready" if ready else "unready", "checks": checks}, 200 if ready else 503
        )

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                async with self.application.engine.read() as reader:
                    await reader.last_ts()
        except TimeoutError:
            return f"no answer within {READY_TIMEOUT:g} s"
        except Exception as error:  # the engine's failure, whatever it is, is the answer
            return f"unreachable: {type(error).__name__}"
        return "ok"

    async def metrics(self, request: Request) -> Response:
        metrics = self.application.metrics
        if metrics is None:
            return json_response(
                {"code": "NotFound", "message": "Metrics are off (OWLAT_METRICS=0)"}, 404
            )
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self._may_read(key.strip()):
            response = json_response(
                {
                    "code": "Unauthenticated",
                    "message": "Send the admin key or OWLAT_METRICS_TOKEN as "
                    "`Authorization: Bearer <key>`",
                },
                401,
            )
            response.headers["www-authenticate"] = "Bearer"
            return response
        return Response(await metrics.render(self.application), media_type=CONTENT_TYPE)

    def _may_read(self, key: str) -> bool:
        if not key:
            return False
        if self.metrics_token and hmac.compare_digest(key.encode(), self.metrics_token.encode()):
            return True
        return self.authenticator.check_admin_key(key)
