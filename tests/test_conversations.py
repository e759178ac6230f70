"""The agent's actions on a conversation: read the thread, note, assign, close, reopen."""

from __future__ import annotations

import httpx

from hub.context import Hub
from hub.intake import accept_inbound
from hub.values import Inbound
from tests.conftest import SignedIn


async def a_chat(hub: Hub) -> int:
    result = await accept_inbound(
        hub,
        Inbound(
            channel="chat",
            sender_kind="chat",
            sender="visitor-7",
            external_id="c-1",
            text="Hello, is anyone there?",
        ),
    )
    return result.conversation_id


async def test_a_note_is_internal_and_stays_in_the_thread(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    conversation_id = await a_chat(hub)

    added = await client.post(
        f"/api/conversations/{conversation_id}/notes",
        headers=agent.headers,
        json={"text": "Called back, no answer"},
    )
    thread = (
        await client.get(f"/api/conversations/{conversation_id}", headers=agent.headers)
    ).json()["thread"]

    assert added.status_code == 201
    assert [(m["direction"], m["kind"]) for m in thread] == [
        ("inbound", "message"),
        ("internal", "note"),
    ]
    assert thread[1]["author_agent_id"] == agent.id


async def test_assigning_shows_in_my_conversations(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    conversation_id = await a_chat(hub)

    await client.post(
        f"/api/conversations/{conversation_id}/assign",
        headers=supervisor.headers,
        json={"assignee_id": agent.id, "force": True},  # the agent is offline
    )
    mine = (
        await client.get("/api/conversations", params={"assignee": "me"}, headers=agent.headers)
    ).json()

    assert [c["id"] for c in mine["conversations"]] == [conversation_id]
    assert mine["conversations"][0]["routing_reason"].startswith("assigned by")


async def test_closing_and_reopening_is_recorded_in_the_history(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    conversation_id = await a_chat(hub)

    closed = (
        await client.post(f"/api/conversations/{conversation_id}/close", headers=agent.headers)
    ).json()
    still_open = (
        await client.get("/api/conversations", params={"status": "open"}, headers=agent.headers)
    ).json()
    reopened = (
        await client.post(
            f"/api/conversations/{conversation_id}/close",
            headers=agent.headers,
            json={"status": "open"},
        )
    ).json()

    assert closed["status"] == "closed" and closed["closed_at"]
    assert still_open["conversations"] == []
    assert reopened["status"] == "open" and reopened["closed_at"] is None
    card = (
        await client.get(f"/api/customers/{closed['customer_id']}", headers=agent.headers)
    ).json()
    assert [e["kind"] for e in card["history"][:2]] == ["status_change", "status_change"]


async def test_the_conversation_list_pages_by_keyset(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    for n in range(5):
        await accept_inbound(
            hub,
            Inbound(
                channel="chat",
                sender_kind="chat",
                sender=f"visitor-{n}",
                external_id=f"c{n}",
                text="hi",
            ),
        )

    seen, before = [], None
    while True:
        params = {"limit": 2, **({"before": before} if before else {})}
        page = (await client.get("/api/conversations", params=params, headers=agent.headers)).json()
        seen += [c["id"] for c in page["conversations"]]
        before = page["next"]
        if before is None:
            break

    assert seen == sorted(seen, reverse=True) and len(seen) == 5


async def test_assigning_to_an_unknown_agent_is_refused(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    conversation_id = await a_chat(hub)

    response = await client.post(
        f"/api/conversations/{conversation_id}/assign",
        headers=agent.headers,
        json={"assignee_id": 999},
    )

    assert response.status_code == 422


async def test_presence_is_set_by_the_agent_and_listed_with_load(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    conversation_id = await a_chat(hub)
    await client.post(
        f"/api/conversations/{conversation_id}/assign",
        headers=agent.headers,
        json={"assignee_id": agent.id},
    )

    answer = await client.put(
        "/api/agents/me/presence", headers=agent.headers, json={"status": "online"}
    )
    listed = (await client.get("/api/agents", headers=agent.headers)).json()
    wrong = await client.put(
        "/api/agents/me/presence", headers=agent.headers, json={"status": "sleeping"}
    )

    assert answer.json()["presence"] == "online"
    assert [(a["email"], a["presence"], a["open_conversations"]) for a in listed] == [
        (agent.email, "online", 1)
    ]
    assert wrong.status_code == 422
