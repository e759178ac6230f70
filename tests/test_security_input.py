"""Numbers past what the database holds are bad input (422) or unknown ids (404), never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import SignedIn

HUGE = 2**70


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/conversations/{HUGE}"),
        ("GET", f"/api/customers/{HUGE}"),
        ("GET", f"/api/customers/-{HUGE}/consents"),
        ("POST", f"/api/customers/merges/{HUGE}/undo"),
        ("POST", f"/api/dead-letters/{HUGE}/replay"),
        ("POST", f"/api/campaigns/{HUGE}/cancel"),
    ],
)
async def test_an_id_too_large_for_the_database_is_404(
    client: httpx.AsyncClient, supervisor: SignedIn, method: str, path: str
):
    response = await client.request(method, path, headers=supervisor.headers)

    assert response.status_code == 404
    assert str(HUGE) in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/dead-letters?before={HUGE}", None),
        ("GET", f"/api/conversations?before={HUGE}", None),
        ("POST", "/api/complaints", {"customer_id": HUGE, "subject": "x"}),
    ],
)
async def test_a_number_too_large_for_the_database_is_422(
    client: httpx.AsyncClient, supervisor: SignedIn, method: str, path: str, body
):
    response = await client.request(method, path, json=body, headers=supervisor.headers)

    assert response.status_code == 422, response.text
    assert "out of range" in response.json()["detail"]
