"""Complaints are cases of their own: opened, moved through their states, linked, listed."""

from __future__ import annotations

import httpx

from hub.context import Hub
from hub.intake import accept_inbound
from hub.values import Inbound
from tests.conftest import SignedIn


async def a_customer_with_two_conversations(hub: Hub) -> tuple[int, int, int]:
    by_mail = await accept_inbound(
        hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender="kunde@example.de",
            external_id="m1",
            subject="Rechnung",
            text="Die Rechnung ist zu hoch.",
        ),
    )
    by_phone = await accept_inbound(
        hub,
        Inbound(
            channel="voice",
            sender_kind="email",
            sender="kunde@example.de",
            external_id="CA1",
            text="Anruf wegen Rechnung",
        ),
    )
    return by_mail.customer_id, by_mail.conversation_id, by_phone.conversation_id


async def test_a_complaint_links_conversations_on_several_channels(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id, mail, call = await a_customer_with_two_conversations(hub)

    response = await client.post(
        "/api/complaints",
        headers=agent.headers,
        json={
            "customer_id": customer_id,
            "subject": "Rechnung zu hoch",
            "severity": "high",
            "due_at": "2026-12-01T12:00:00+01:00",
            "conversation_ids": [mail, call],
        },
    )

    assert response.status_code == 201, response.text
    complaint = response.json()
    assert complaint["status"] == "open" and complaint["severity"] == "high"
    assert complaint["conversation_ids"] == sorted([mail, call])
    assert complaint["due_at"] == "2026-12-01T11:00:00Z"
    assert complaint["opened_at"] and complaint["resolved_at"] is None


async def test_a_complaint_moves_through_its_states_with_resolved_time(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id, _, _ = await a_customer_with_two_conversations(hub)
    created = (
        await client.post(
            "/api/complaints",
            headers=agent.headers,
            json={"customer_id": customer_id, "subject": "Rechnung"},
        )
    ).json()
    path = f"/api/complaints/{created['id']}"

    working = (
        await client.patch(path, headers=agent.headers, json={"status": "in_progress"})
    ).json()
    resolved = (await client.patch(path, headers=agent.headers, json={"status": "resolved"})).json()
    reopened = (await client.patch(path, headers=agent.headers, json={"status": "open"})).json()

    assert working["status"] == "in_progress" and working["resolved_at"] is None
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert reopened["status"] == "open" and reopened["resolved_at"] is None
    assert reopened["opened_at"] == created["opened_at"]


async def test_a_complaint_cannot_link_another_customers_conversation(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id, _, _ = await a_customer_with_two_conversations(hub)
    stranger = await accept_inbound(
        hub,
        Inbound(
            channel="sms", sender_kind="phone", sender="+4917011111111", external_id="SM9", text="x"
        ),
    )

    response = await client.post(
        "/api/complaints",
        headers=agent.headers,
        json={
            "customer_id": customer_id,
            "subject": "x",
            "conversation_ids": [stranger.conversation_id],
        },
    )

    assert response.status_code == 422
    listed = (await client.get("/api/complaints", headers=agent.headers)).json()
    assert listed["complaints"] == []


async def test_complaints_are_listed_by_status_newest_first_and_paged(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id, _, _ = await a_customer_with_two_conversations(hub)
    ids = []
    for n in range(5):
        created = await client.post(
            "/api/complaints",
            headers=agent.headers,
            json={"customer_id": customer_id, "subject": f"Fall {n}"},
        )
        ids.append(created.json()["id"])
    await client.patch(
        f"/api/complaints/{ids[0]}", headers=agent.headers, json={"status": "resolved"}
    )

    first = (
        await client.get(
            "/api/complaints", params={"status": "open", "limit": 2}, headers=agent.headers
        )
    ).json()
    rest = (
        await client.get(
            "/api/complaints",
            params={"status": "open", "limit": 2, "before": first["next"]},
            headers=agent.headers,
        )
    ).json()

    assert [c["id"] for c in first["complaints"]] == [ids[4], ids[3]]
    assert [c["id"] for c in rest["complaints"]] == [ids[2], ids[1]]


async def test_bad_complaint_input_is_422(client: httpx.AsyncClient, agent: SignedIn):
    unknown_customer = await client.post(
        "/api/complaints", headers=agent.headers, json={"customer_id": 4711, "subject": "x"}
    )
    bad_status = await client.get(
        "/api/complaints", params={"status": "done"}, headers=agent.headers
    )
    empty_subject = await client.post(
        "/api/complaints", headers=agent.headers, json={"customer_id": 1, "subject": ""}
    )

    assert unknown_customer.status_code == 404
    assert bad_status.status_code == 422
    assert empty_subject.status_code == 422
