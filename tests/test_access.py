"""Who may do what: credentials (401), roles (403), unknown ids (404), bad input (422)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from hub.context import Hub
from hub.models import Customer, Identity
from tests.conftest import SignedIn

API_GETS = (
    "/api/customers/1",
    "/api/customers/1/history",
    "/api/complaints",
    "/api/conversations",
    "/api/agents",
    "/api/customers/lookup?email=a@example.com",
)


@pytest.mark.parametrize("path", API_GETS)
async def test_the_api_refuses_requests_without_credentials(client: httpx.AsyncClient, path):
    response = await client.get(path)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_wrong_or_revoked_token_is_refused(client: httpx.AsyncClient, agent: SignedIn):
    for header in ("Bearer ohk_wrong", "Basic " + agent.token, "Bearer"):
        response = await client.get("/api/agents", headers={"Authorization": header})
        assert response.status_code == 401, header


async def test_an_agent_may_not_merge_customers_but_a_supervisor_may(
    client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    one = (await client.post("/api/customers", headers=agent.headers, json={"name": "A"})).json()
    two = (await client.post("/api/customers", headers=agent.headers, json={"name": "B"})).json()

    refused = await client.post(
        f"/api/customers/{one['id']}/merge", headers=agent.headers, json={"other_id": two["id"]}
    )
    allowed = await client.post(
        f"/api/customers/{one['id']}/merge",
        headers=supervisor.headers,
        json={"other_id": two["id"]},
    )

    assert refused.status_code == 403
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/customers/999999",
        "/api/customers/999999/history",
        "/api/complaints/999999",
        "/api/conversations/999999",
    ],
)
async def test_unknown_ids_are_404(client: httpx.AsyncClient, agent: SignedIn, path):
    response = await client.get(path, headers=agent.headers)

    assert response.status_code == 404
    assert "999999" in response.json()["detail"]


async def test_lookup_of_an_unknown_number_is_404(client: httpx.AsyncClient, agent: SignedIn):
    response = await client.get(
        "/api/customers/lookup", params={"phone": "0151 9999999"}, headers=agent.headers
    )

    assert response.status_code == 404


BAD_CUSTOMERS = [
    ({"name": "x" * 201}, "name"),
    ({"tier": "D"}, "tier"),
    ({"emails": ["not-an-address"]}, "email"),
    ({"phones": ["12ab"]}, "phone"),
    ({"revenue": -5}, "revenue"),
    ({"birthday": "1990-02-31"}, "birthday"),
    ({"key_account_agent_id": 424242}, "key_account_agent_id"),
    ({"favourite_colour": "blue"}, "favourite_colour"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CUSTOMERS)
async def test_a_bad_customer_is_422_naming_the_field_and_writes_nothing(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, body, field
):
    response = await client.post(
        "/api/customers", headers=agent.headers, json={"name": "Good Name", **body}
    )

    assert response.status_code == 422, response.text
    assert field in response.text
    async with hub.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_a_request_fails_whole_when_its_second_phone_is_bad(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    response = await client.post(
        "/api/customers",
        headers=agent.headers,
        json={
            "name": "Half",
            "emails": ["half@example.com"],
            "phones": ["0151 2345678", "nonsense"],
        },
    )

    assert response.status_code == 422
    async with hub.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Identity)) == 0


async def test_malformed_json_is_422_not_500(client: httpx.AsyncClient, agent: SignedIn):
    response = await client.post(
        "/api/interactions",
        content=b'{"channel": "sms",',
        headers={**agent.headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 422


BAD_INTERACTIONS = [
    ({"channel": "pigeon"}, "channel"),
    ({"email": None, "phone": None}, "email or phone"),
    ({"email": "nobody@@example.com"}, "e-mail"),
    ({"external_id": ""}, "external_id"),
    ({"external_id": "x" * 501}, "external_id"),
    ({"occurred_at": "2026-11-01T10:00:00"}, "time zone"),
    ({"text": "x" * 100_001}, "text"),
]


@pytest.mark.parametrize(("change", "named"), BAD_INTERACTIONS)
async def test_a_bad_interaction_is_422_naming_what_is_wrong(
    client: httpx.AsyncClient, agent: SignedIn, change, named
):
    body = {
        "channel": "visit",
        "email": "anna@example.com",
        "text": "Besuch vor Ort",
        "external_id": "visit-1",
        **change,
    }

    response = await client.post("/api/interactions", headers=agent.headers, json=body)

    assert response.status_code == 422, response.text
    assert named in response.text


async def test_an_email_already_owned_by_another_customer_is_refused(
    client: httpx.AsyncClient, agent: SignedIn
):
    await client.post(
        "/api/customers",
        headers=agent.headers,
        json={"name": "Anna", "emails": ["anna@example.com"]},
    )
    other = (
        await client.post("/api/customers", headers=agent.headers, json={"name": "Other"})
    ).json()

    response = await client.patch(
        f"/api/customers/{other['id']}",
        headers=agent.headers,
        json={"emails": ["ANNA@example.com"]},
    )

    assert response.status_code == 422
    assert "merge" in response.json()["detail"]
