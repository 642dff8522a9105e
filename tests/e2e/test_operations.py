"""/healthz, /readyz and /metrics over real HTTP, on both ports and both engines
(runtime/server/operations.py, runtime/metrics.py)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from owlat.runtime import define_counter
from owlat.runtime.errors import EngineError
from owlat.runtime.server import Operations, create_app
from owlat.runtime.testing import in_mutation
from tests.e2e.conftest import RunningServer
from tests.e2e.sync_harness import RawSocket
from tests.e2e.sync_messages import add, modify

SAMPLE = "owlat_function_calls_total"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page: (name, sorted labels) → value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(
    server: RunningServer, url: str | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(base_url=url or server.url) as http:
        reply = await http.get("/metrics", headers={"authorization": f"Bearer {server.admin_key}"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(reply.text)


async def test_health_and_readiness_on_both_ports(server: RunningServer) -> None:
    for base in (server.url, server.site_url):
        async with httpx.AsyncClient(base_url=base) as http:
            health = await http.get("/healthz")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "ready",
                "checks": {"database": "ok", "schema": "ok", "scheduler": "off"},
            }


async def test_readiness_fails_when_the_database_does_not_answer(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> object:
        raise EngineError("disk I/O error")

    monkeypatch.setattr(server.application.engine, "read", broken)  # a failing database
    async with httpx.AsyncClient(base_url=server.url) as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unready",
        "checks": {"database": "unreachable: EngineError", "schema": "ok", "scheduler": "off"},
    }


async def test_metrics_need_the_admin_key(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        anonymous = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"authorization": "Bearer nope"})
        admin = await http.get("/metrics", headers={"authorization": f"Bearer {server.admin_key}"})
    assert anonymous.status_code == wrong.status_code == 401
    assert "OWLAT_METRICS_TOKEN" in wrong.json()["message"]
    assert admin.status_code == 200 and SAMPLE in admin.text


async def test_a_metrics_token_reads_metrics_but_is_no_admin_key(server: RunningServer) -> None:
    operations = Operations(server.application, server.authenticator, "scrape-token")
    app = create_app(server.application, server.authenticator, operations=operations)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as http:
        scraped = await http.get("/metrics", headers={"authorization": "Bearer scrape-token"})
        query = await http.post(
            "/api/query",
            json={"path": "messages:countAll", "args": {}},
            headers={"authorization": "Convex scrape-token"},
        )
    assert scraped.status_code == 200
    assert query.status_code == 401


async def test_metrics_count_calls_commits_sockets_jobs_and_files(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        for body in ("a", "b"):
            sent = await http.post(
                "/api/mutation",
                json={"path": "messages:send", "args": {"channel": "m", "body": body}},
            )
            assert sent.json()["status"] == "success"
        refused = await http.post(
            "/api/mutation", json={"path": "messages:send", "args": {"channel": "m", "body": ""}}
        )
        assert refused.json()["status"] == "error"
        await http.post("/api/query", json={"path": "messages:list", "args": {"channel": "m"}})
    await server.application.run_mutation("jobs:scheduleRecords", {"keys": ["x"], "delay_ms": 0})
    await server.application.run_action("files:storeText", {"text": "12345"})
    counter = define_counter("owlat_test_widgets", "Widgets made by the test app", ["color"])
    color = uuid.uuid4().hex  # the app's metrics are process-wide: a label of this test's own
    counter.labels(color).inc(3)

    ws_url = server.url.replace("http", "ws") + "/api/sync"
    async with RawSocket.open(ws_url) as socket:
        await socket.send(modify(0, 1, add(0, "messages:list", {"channel": "m"})))
        assert (await socket.receive())["type"] == "Transition"

        async def send(ctx: object) -> None:
            await ctx.db.insert("messages", {"channel": "m", "body": "pushed"})  # type: ignore[attr-defined]

        await in_mutation(server.application, send)
        assert (await socket.receive())["type"] == "Transition"
        metrics = await scrape(server, server.site_url)  # the site port serves them too

    send_labels = (("kind", "mutation"), ("outcome", "success"), ("path", "messages:send"))
    assert metrics[(SAMPLE, send_labels)] == 2
    refused_labels = (("kind", "mutation"), ("outcome", "error"), ("path", "messages:send"))
    assert metrics[(SAMPLE, refused_labels)] == 1
    list_labels = (("kind", "query"), ("path", "messages:list"))
    assert metrics[("owlat_function_duration_seconds_count", list_labels)] >= 1
    assert metrics[("owlat_commits_total", ())] >= 5
    assert metrics[("owlat_sync_sockets", ())] == 1
    assert metrics[("owlat_subscriptions", ())] == 1
    assert metrics[("owlat_push_latency_seconds_count", ())] == 1
    assert 0 < metrics[("owlat_push_latency_seconds_sum", ())] < 5
    assert metrics[("owlat_scheduler_queue_depth", ())] == 1  # this server runs no scheduler
    assert metrics[("owlat_scheduler_lag_seconds", ())] >= 0
    assert metrics[("owlat_storage_files", ())] == 1
    assert metrics[("owlat_storage_bytes", ())] == 5
    assert metrics[("owlat_test_widgets_total", (("color", color),))] == 3
    assert ("owlat_occ_retries_total", ()) in metrics


@pytest.mark.parametrize("flag", ["0"])
async def test_metrics_can_be_turned_off(flag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from owlat.config import Settings

    monkeypatch.setenv("OWLAT_METRICS", flag)
    assert Settings.from_env().metrics is False
    monkeypatch.setenv("OWLAT_METRICS", "")
    assert Settings.from_env().metrics is True
