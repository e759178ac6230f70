"""Blocks and consents through the API, and the double opt-in round trip end to end."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from hub.context import Hub
from hub.delivery import RecordingSender
from hub.dispatcher import Dispatcher
from hub.gate import Recipient, check
from hub.models import AuditEntry
from tests.conftest import SignedIn


async def anna(client: httpx.AsyncClient, agent: SignedIn, language: str = "de") -> int:
    response = await client.post(
        "/api/customers",
        headers=agent.headers,
        json={
            "name": "Anna Schmidt",
            "language": language,
            "emails": ["anna@example.com"],
            "phones": ["0151 2345678"],
        },
    )
    return response.json()["id"]


async def test_a_block_on_a_number_in_any_notation_is_stored_normalised_and_listed(
    client: httpx.AsyncClient, agent: SignedIn
):
    created = await client.post(
        "/api/blocks",
        headers=agent.headers,
        json={"kind": "phone", "value": "0049 151 2345678", "reason": "sms_stop"},
    )
    listed = await client.get(
        "/api/blocks", params={"phone": "0151 2345678"}, headers=agent.headers
    )

    assert created.status_code == 201
    block = created.json()
    assert (block["value"], block["scope"], block["created_by_agent_id"]) == (
        "+491512345678",
        "all",
        agent.id,
    )
    assert [b["id"] for b in listed.json()["blocks"]] == [block["id"]]


async def test_a_block_for_an_invalid_address_is_422_naming_it(
    client: httpx.AsyncClient, agent: SignedIn
):
    bad_mail = await client.post(
        "/api/blocks",
        headers=agent.headers,
        json={"kind": "email", "value": "anna(at)example", "reason": "manual"},
    )
    bad_reason = await client.post(
        "/api/blocks",
        headers=agent.headers,
        json={"kind": "email", "value": "anna@example.com", "reason": "grumpy"},
    )
    no_customer = await client.post(
        "/api/blocks",
        headers=agent.headers,
        json={"kind": "customer", "value": "4711", "reason": "legal"},
    )

    assert bad_mail.status_code == 422 and "anna(at)example" in bad_mail.text
    assert bad_reason.status_code == 422 and "reason" in bad_reason.text
    assert no_customer.status_code == 422 and "4711" in no_customer.text


async def test_lifting_a_block_needs_a_supervisor_and_is_audited(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    block = (
        await client.post(
            "/api/blocks",
            headers=agent.headers,
            json={"kind": "email", "value": "anna@example.com", "reason": "legal"},
        )
    ).json()

    refused = await client.delete(f"/api/blocks/{block['id']}", headers=agent.headers)
    lifted = await client.delete(f"/api/blocks/{block['id']}", headers=supervisor.headers)
    again = await client.delete(f"/api/blocks/{block['id']}", headers=supervisor.headers)

    assert refused.status_code == 403
    assert lifted.status_code == 200 and lifted.json()["lifted_by_agent_id"] == supervisor.id
    assert again.status_code == 409
    active = (await client.get("/api/blocks", headers=agent.headers)).json()["blocks"]
    everything = (
        await client.get("/api/blocks", params={"active": False}, headers=agent.headers)
    ).json()["blocks"]
    assert active == [] and len(everything) == 1
    async with hub.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["block.added", "block.lifted"]


async def test_the_card_shows_consents_and_blocks(client: httpx.AsyncClient, agent: SignedIn):
    customer_id = await anna(client, agent)
    await client.put(
        f"/api/customers/{customer_id}/consents",
        headers=agent.headers,
        json={"channel": "sms", "purpose": "service", "state": "granted", "source": "phone call"},
    )
    await client.post(
        "/api/blocks",
        headers=agent.headers,
        json={
            "kind": "email",
            "value": "anna@example.com",
            "reason": "unsubscribe",
            "scope": "marketing",
        },
    )

    card = (await client.get(f"/api/customers/{customer_id}", headers=agent.headers)).json()

    assert [(c["channel"], c["purpose"], c["state"]) for c in card["consents"]] == [
        ("sms", "service", "granted")
    ]
    assert [(b["reason"], b["scope"]) for b in card["blocks"]] == [("unsubscribe", "marketing")]


async def test_a_consent_records_source_and_evidence(client: httpx.AsyncClient, agent: SignedIn):
    customer_id = await anna(client, agent)

    answer = await client.put(
        f"/api/customers/{customer_id}/consents",
        headers=agent.headers,
        json={
            "channel": "phone",
            "purpose": "marketing",
            "state": "granted",
            "source": "trade fair",
            "text_shown": "Ja, rufen Sie mich an.",
        },
    )
    listed = await client.get(f"/api/customers/{customer_id}/consents", headers=agent.headers)

    consent = answer.json()
    assert consent["state"] == "granted" and consent["source"] == "trade fair"
    assert consent["evidence"]["text_shown"] == "Ja, rufen Sie mich an."
    assert consent["evidence"]["recorded_by_agent_id"] == agent.id
    assert consent["evidence"]["at"]
    assert listed.json() == [consent]


async def test_the_double_opt_in_round_trip_grants_marketing_email_with_evidence(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id = await anna(client, agent)

    requested = await client.put(
        f"/api/customers/{customer_id}/consents",
        headers=agent.headers,
        json={
            "channel": "email",
            "purpose": "marketing",
            "state": "granted",
            "source": "newsletter box",
        },
    )
    sender = RecordingSender()
    await Dispatcher(hub, {"email": sender}).dispatch_once()
    (confirmation,) = sender.sent
    link = re.search(r"http://\S+/consents/confirm/\S+", confirmation.text).group(0)
    path = link.split("127.0.0.1:8000", 1)[1]
    page = await client.get(path)
    still_pending = await client.get(
        f"/api/customers/{customer_id}/consents", headers=agent.headers
    )
    clicked = await client.post(path, headers={"User-Agent": "Mail client"})
    granted = await client.get(f"/api/customers/{customer_id}/consents", headers=agent.headers)

    assert requested.json()["state"] == "pending_confirmation"
    assert confirmation.recipient == "anna@example.com"
    assert confirmation.subject.startswith("Bitte bestätigen")
    assert page.status_code == 200 and '<form method="post"' in page.text
    assert still_pending.json()[0]["state"] == "pending_confirmation"
    assert clicked.status_code == 200 and "Vielen Dank" in clicked.text
    consent = granted.json()[0]
    assert consent["state"] == "granted"
    assert consent["evidence"]["confirmed_at"]
    assert consent["evidence"]["confirmed_ip"] == "127.0.0.1"
    assert consent["evidence"]["confirmed_user_agent"] == "Mail client"
    async with hub.sessions() as session:
        decision = await check(
            session, Recipient(customer_id, "email", "anna@example.com"), "marketing", hub.policy
        )
    assert decision.allowed


async def test_a_forged_or_replaced_confirmation_link_confirms_nothing(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id = await anna(client, agent, language="en")
    body = {"channel": "email", "purpose": "marketing", "state": "granted", "source": "form"}
    await client.put(f"/api/customers/{customer_id}/consents", headers=agent.headers, json=body)
    sender = RecordingSender()
    await Dispatcher(hub, {"email": sender}).dispatch_once()
    old_link = re.search(r"/consents/confirm/\S+", sender.sent[0].text).group(0)
    await client.put(
        f"/api/customers/{customer_id}/consents",
        headers=agent.headers,
        json={**body, "state": "revoked"},
    )
    await client.put(f"/api/customers/{customer_id}/consents", headers=agent.headers, json=body)

    forged = await client.post(old_link[:-3] + "xyz")
    replaced = await client.post(old_link)

    assert forged.status_code == 404
    assert replaced.status_code == 409
    consents = (
        await client.get(f"/api/customers/{customer_id}/consents", headers=agent.headers)
    ).json()
    assert consents[0]["state"] == "pending_confirmation"


async def test_a_customer_without_email_cannot_be_asked_to_confirm(
    client: httpx.AsyncClient, agent: SignedIn
):
    customer = (
        await client.post(
            "/api/customers",
            headers=agent.headers,
            json={"name": "Nur Telefon", "phones": ["030 1234567"]},
        )
    ).json()

    answer = await client.put(
        f"/api/customers/{customer['id']}/consents",
        headers=agent.headers,
        json={"channel": "email", "purpose": "marketing", "state": "granted", "source": "call"},
    )

    assert answer.status_code == 422
    assert "no e-mail address" in answer.json()["detail"]
