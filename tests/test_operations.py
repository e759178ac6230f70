"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import httpx

from hub.app import create_app
from hub.context import Hub
from hub.settings import load_settings
from tests.conftest import SECRET, SignedIn


async def test_healthz_and_readyz_answer_when_the_database_does(client: httpx.AsyncClient):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True}


async def test_readyz_is_503_when_the_database_is_unreachable(tmp_path):
    settings = load_settings(
        _env_file=None,
        secret_key=SECRET,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db",
    )
    hub = Hub.create(settings)
    transport = httpx.ASGITransport(app=create_app(settings, hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        response = await http.get("/readyz")
    await hub.close()

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": False}


async def test_metrics_count_requests_by_route_and_ingests_by_channel(
    client: httpx.AsyncClient, agent: SignedIn
):
    await client.post(
        "/api/interactions",
        headers=agent.headers,
        json={
            "channel": "letter",
            "email": "anna@example.com",
            "text": "Brief erhalten",
            "external_id": "letter-1",
        },
    )
    await client.get("/api/customers/1", headers=agent.headers)

    metrics = (await client.get("/metrics")).text

    assert 'omnihub_ingested_messages_total{channel="letter"} 1.0' in metrics
    assert (
        'omnihub_http_requests_total{method="GET",route="/api/customers/{customer_id}",'
        'status="200"} 1.0'
    ) in metrics
    assert "omnihub_http_request_seconds_bucket" in metrics
    assert "omnihub_live_in_flight 1.0" in metrics  # the scrape itself is being served


async def test_every_endpoint_is_in_the_openapi_document(client: httpx.AsyncClient):
    paths = (await client.get("/openapi.json")).json()["paths"]

    for path in (
        "/api/customers/lookup",
        "/api/customers/{customer_id}/history",
        "/api/customers/{customer_id}/merge",
        "/api/interactions",
        "/api/complaints",
        "/api/conversations",
        "/api/agents/me/presence",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
