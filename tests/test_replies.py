"""An agent's reply goes through the outbox and the gate, and says at once if it is blocked."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from hub.context import Hub
from hub.delivery import RecordingSender
from hub.dispatcher import Dispatcher
from hub.intake import accept_inbound
from hub.models import Interaction, OutboxMessage
from hub.values import Inbound
from tests.conftest import SignedIn


async def an_inquiry(hub: Hub, channel: str = "email") -> tuple[int, int]:
    sender = ("email", "Anna@Example.com") if channel == "email" else ("phone", "0151 2345678")
    result = await accept_inbound(
        hub,
        Inbound(
            channel=channel,
            sender_kind=sender[0],
            sender=sender[1],
            external_id="<in-1@example.com>",
            subject="Lieferzeit",
            text="Wann kommt meine Bestellung?",
        ),
    )
    return result.customer_id, result.conversation_id


async def test_a_reply_is_queued_in_history_and_sent_on_the_conversations_channel(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    _, conversation_id = await an_inquiry(hub)

    answer = await client.post(
        f"/api/conversations/{conversation_id}/reply",
        headers=agent.headers,
        json={"text": "Morgen."},
    )
    sender = RecordingSender()
    await Dispatcher(hub, {"email": sender}).dispatch_once()

    assert answer.status_code == 202
    assert answer.json()["status"] == "queued" and answer.json()["reasons"] == []
    (mail,) = sender.sent
    assert (mail.recipient, mail.subject, mail.text) == (
        "anna@example.com",
        f"Re: Lieferzeit [#{conversation_id}]",
        "Morgen.",
    )
    assert mail.headers == {"In-Reply-To": "<in-1@example.com>", "References": "<in-1@example.com>"}
    thread = (
        await client.get(f"/api/conversations/{conversation_id}", headers=agent.headers)
    ).json()
    assert thread["thread"][1]["direction"] == "outbound"
    assert thread["thread"][1]["author_agent_id"] == agent.id


async def test_a_reply_to_a_blocked_customer_answers_blocked_with_the_reasons(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id, conversation_id = await an_inquiry(hub)
    await client.post(
        "/api/blocks",
        headers=agent.headers,
        json={"kind": "customer", "value": str(customer_id), "reason": "do_not_contact"},
    )

    answer = await client.post(
        f"/api/conversations/{conversation_id}/reply",
        headers=agent.headers,
        json={"text": "Morgen."},
    )
    sender = RecordingSender()
    await Dispatcher(hub, {"email": sender}).dispatch_once()

    assert answer.json()["status"] == "blocked"
    assert answer.json()["reasons"] == ["block:do_not_contact"]
    assert sender.sent == []


async def test_a_service_reply_passes_a_marketing_only_block(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    _, conversation_id = await an_inquiry(hub)
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

    answer = await client.post(
        f"/api/conversations/{conversation_id}/reply",
        headers=agent.headers,
        json={"text": "Morgen."},
    )

    assert answer.json()["status"] == "queued"


async def test_a_double_clicked_reply_with_one_client_id_is_stored_once(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    _, conversation_id = await an_inquiry(hub)
    body = {"text": "Morgen.", "client_id": "compose-42"}

    first = await client.post(
        f"/api/conversations/{conversation_id}/reply", headers=agent.headers, json=body
    )
    second = await client.post(
        f"/api/conversations/{conversation_id}/reply", headers=agent.headers, json=body
    )

    assert first.json()["outbox_id"] == second.json()["outbox_id"]
    async with hub.sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(OutboxMessage))
    assert rows == 1


async def test_an_sms_conversation_is_answered_by_sms_to_the_callers_number(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    _, conversation_id = await an_inquiry(hub, channel="sms")

    await client.post(
        f"/api/conversations/{conversation_id}/reply",
        headers=agent.headers,
        json={"text": "Morgen."},
    )
    sender = RecordingSender()
    await Dispatcher(hub, {"sms": sender}).dispatch_once()

    assert [(m.channel, m.recipient, m.subject) for m in sender.sent] == [
        ("sms", "+491512345678", None)
    ]


async def test_replying_on_another_channel_of_the_customer(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id, conversation_id = await an_inquiry(hub)
    await client.patch(
        f"/api/customers/{customer_id}", headers=agent.headers, json={"phones": ["0151 2345678"]}
    )

    answer = await client.post(
        f"/api/conversations/{conversation_id}/reply",
        headers=agent.headers,
        json={"text": "Kurz per SMS", "channel": "sms"},
    )
    no_chat = await client.post(
        f"/api/conversations/{conversation_id}/reply",
        headers=agent.headers,
        json={"text": "x", "channel": "chat"},
    )

    assert answer.json()["status"] == "queued"
    async with hub.sessions() as session:
        row = await session.get(OutboxMessage, answer.json()["outbox_id"])
    assert (row.channel, row.recipient) == ("sms", "+491512345678")
    assert no_chat.status_code == 422 and "no chat" in no_chat.json()["detail"]


async def test_a_reply_to_a_closed_or_unknown_conversation_is_refused(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    _, conversation_id = await an_inquiry(hub)
    await client.post(f"/api/conversations/{conversation_id}/close", headers=agent.headers)

    closed = await client.post(
        f"/api/conversations/{conversation_id}/reply",
        headers=agent.headers,
        json={"text": "Hallo?"},
    )
    unknown = await client.post(
        "/api/conversations/999999/reply", headers=agent.headers, json={"text": "Hallo?"}
    )
    empty = await client.post(
        f"/api/conversations/{conversation_id}/reply", headers=agent.headers, json={"text": ""}
    )

    assert closed.status_code == 409 and "closed" in closed.json()["detail"]
    assert unknown.status_code == 404
    assert empty.status_code == 422
    async with hub.sessions() as session:
        outbound = await session.scalar(
            select(func.count()).select_from(Interaction).where(Interaction.direction == "outbound")
        )
    assert outbound == 0
