"""Three agents coming and going while 50 conversations of every tier arrive.

Conversations arrive five at a time, concurrently, while two of the agents
change presence concurrently too; the key-account agent changes presence only
between the batches, so the test knows when they were there. At the end every
agent works off their conversations until nothing waits.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import httpx
from sqlalchemy import func, select

from hub.context import Hub
from hub.models import Conversation, RoutingState
from tests.conftest import MakeAgent, SignedIn
from tests.routing_helpers import customer, events, go, mail_from, routed_agent

CAPACITY = 6
BATCHES = 10
PER_BATCH = 5
TIERS = ("A", "B", "C", "C", "B")


async def open_loads(hub: Hub) -> Counter[int]:
    statement = (
        select(Conversation.assignee_id, func.count())
        .where(Conversation.status == "open", Conversation.assignee_id.is_not(None))
        .group_by(Conversation.assignee_id)
    )
    async with hub.sessions() as session:
        return Counter(dict((await session.execute(statement)).all()))


async def assignees(hub: Hub, ids: list[int]) -> dict[int, int | None]:
    statement = select(Conversation.id, Conversation.assignee_id).where(Conversation.id.in_(ids))
    async with hub.sessions() as session:
        return dict((await session.execute(statement)).all())


async def waiting_count(hub: Hub) -> int:
    statement = select(func.count()).where(RoutingState.waiting.is_(True))
    async with hub.sessions() as session:
        return await session.scalar(statement)


async def test_fifty_conversations_and_three_agents_coming_and_going(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    lea = await routed_agent(
        client,
        make_agent,
        supervisor,
        "Lea",
        "offline",
        teams=["key_accounts", "standard", "pool"],
        capacity={"email": CAPACITY},
    )
    max_ = await routed_agent(
        client,
        make_agent,
        supervisor,
        "Max",
        "offline",
        teams=["standard", "pool"],
        capacity={"email": CAPACITY},
    )
    kim = await routed_agent(
        client,
        make_agent,
        supervisor,
        "Kim",
        "offline",
        teams=["key_accounts"],
        capacity={"email": CAPACITY},
        deputy_agent_id=lea.id,
    )
    for tier in ("A", "B", "C"):
        extra = {"key_account_agent_id": kim.id} if tier == "A" else {}
        await customer(client, supervisor, f"{tier.lower()}@example.net", tier=tier, **extra)
    shuffle = random.Random(7)
    a_while_kim_online: list[tuple[int, int]] = []  # (conversation, batch)
    all_ids: list[int] = []
    kim_full_after: dict[int, bool] = {}

    for batch in range(BATCHES):
        kim_online = shuffle.random() < 0.6
        await go(client, kim, "online" if kim_online else "offline")
        tiers = [TIERS[(batch * PER_BATCH + n) % len(TIERS)] for n in range(PER_BATCH)]
        flips = [
            go(client, who, shuffle.choice(["online", "offline", "away"])) for who in (lea, max_)
        ]
        arrivals = [mail_from(hub, f"{tier.lower()}@example.net") for tier in tiers]
        results = await asyncio.gather(*arrivals, *flips)
        ids = list(results[:PER_BATCH])
        all_ids += ids
        loads = await open_loads(hub)
        assert all(load <= CAPACITY for load in loads.values()), loads
        kim_full_after[batch] = loads[kim.id] >= CAPACITY
        if kim_online:
            a_while_kim_online += [(i, batch) for i, t in zip(ids, tiers, strict=True) if t == "A"]

    # Whenever the key account was there and not full, the A customer got them.
    owners = await assignees(hub, [i for i, _ in a_while_kim_online])
    assert a_while_kim_online, "the seed gives the key account online batches"
    for conversation_id, batch in a_while_kim_online:
        assert owners[conversation_id] == kim.id or kim_full_after[batch], conversation_id
    assert kim.id in owners.values()
    waited_in_the_storm = await waiting_count(hub)

    # Everyone online; each works off one conversation a round until nothing waits.
    for who in (lea, max_, kim):
        await go(client, who, "online")
    for _round in range(len(all_ids)):
        if await waiting_count(hub) == 0:
            break
        for who in (lea, max_, kim):
            mine = await client.get(
                "/api/conversations",
                params={"assignee": "me", "status": "open"},
                headers=who.headers,
            )
            listed = mine.json()["conversations"]
            if listed:
                await client.post(
                    f"/api/conversations/{listed[-1]['id']}/close", headers=who.headers
                )
            loads = await open_loads(hub)
            assert all(load <= CAPACITY for load in loads.values()), loads

    assert waited_in_the_storm > 0 and await waiting_count(hub) == 0
    final = await assignees(hub, all_ids)
    assert len(all_ids) == BATCHES * PER_BATCH and None not in final.values()
    given = Counter(
        e["conversation_id"] for e in events(hub, "conversation.assigned") if e["assignee_id"]
    )
    assert all(given[i] == 1 for i in all_ids), given
