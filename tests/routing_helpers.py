"""What the routing tests share: agents with routing profiles, customers, arriving mail."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from hub.context import Hub
from hub.intake import accept_inbound
from hub.models import Conversation, RoutingState
from hub.values import Inbound
from tests.conftest import MakeAgent, SignedIn

_ids = itertools.count(1)


async def routed_agent(
    client: httpx.AsyncClient,
    make_agent: MakeAgent,
    boss: SignedIn,
    name: str,
    presence: str | None = "online",
    **profile: Any,
) -> SignedIn:
    """An agent with a routing profile (teams, languages, tiers, capacity, deputy)."""
    agent = await make_agent("agent", name)
    if profile:
        await set_profile(client, boss, agent.id, **profile)
    if presence is not None:
        await go(client, agent, presence)
    return agent


async def set_profile(
    client: httpx.AsyncClient, boss: SignedIn, agent_id: int, **profile: Any
) -> dict[str, Any]:
    answer = await client.put(f"/api/agents/{agent_id}/routing", headers=boss.headers, json=profile)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def go(client: httpx.AsyncClient, agent: SignedIn, status: str) -> None:
    answer = await client.put(
        "/api/agents/me/presence", headers=agent.headers, json={"status": status}
    )
    assert answer.status_code == 200, answer.text


async def customer(client: httpx.AsyncClient, by: SignedIn, email: str, **fields: Any) -> int:
    answer = await client.post(
        "/api/customers", headers=by.headers, json={"name": email, "emails": [email], **fields}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


async def mail_from(hub: Hub, email: str, channel: str = "email", **fields: Any) -> int:
    """A new conversation from the customer with this address; its id."""
    number = next(_ids)
    result = await accept_inbound(
        hub,
        Inbound(
            channel=channel,  # type: ignore[arg-type]
            sender_kind="email",
            sender=email,
            external_id=f"<routing-{number}@example.com>",
            thread_key=f"<routing-{number}@example.com>",
            subject=f"Question {number}",
            text="Hello",
            **fields,
        ),
    )
    assert result.conversation_id is not None
    return result.conversation_id


async def conversation(hub: Hub, conversation_id: int) -> Conversation:
    async with hub.sessions() as session:
        found = await session.get(Conversation, conversation_id)
    assert found is not None
    return found


async def routing_state(hub: Hub, conversation_id: int) -> RoutingState:
    async with hub.sessions() as session:
        found = await session.get(RoutingState, conversation_id)
    assert found is not None
    return found


def events(hub: Hub, event_type: str) -> list[dict[str, Any]]:
    return [event.data for event in hub.bus.replay(0) or [] if event.type == event_type]
