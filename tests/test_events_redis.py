"""The Redis event bus: every process hears what one publishes; Redis down loses no data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from hub.app import create_app
from hub.context import Hub
from hub.events import Event
from hub.events_redis import RESUMED, RedisEventBus
from hub.models import Customer, Interaction
from tests.conftest import SignedIn
from tests.console_client import console_socket, next_of_type
from tests.peers.browser import serving
from tests.peers.redis import PrivateRedis

CONTACT = {
    "name": "Anna Schmidt",
    "email": "anna@example.com",
    "subject": "Lieferung",
    "message": "Wo bleibt meine Bestellung?",
    "topic": "inquiry",
}


@pytest.fixture
async def two_buses(redis_url: str, redis_stream: str) -> AsyncIterator[tuple[RedisEventBus, ...]]:
    """Two buses on one stream, as two hub processes have."""
    buses = (
        RedisEventBus(redis_url, stream=redis_stream),
        RedisEventBus(redis_url, stream=redis_stream),
    )
    for bus in buses:
        bus.start()
    await settled(*buses)
    yield buses
    for bus in buses:
        await bus.close()


async def settled(*buses: RedisEventBus) -> None:
    """Until every bus's reader has found the end of the stream it follows."""
    for bus in buses:
        for _ in range(200):
            if bus._cursor is not None:
                break
            await asyncio.sleep(0.01)


async def next_event(subscription, seconds: float = 5.0) -> Event:
    return await asyncio.wait_for(subscription.get(), seconds)


async def test_an_event_published_by_one_process_reaches_a_subscriber_of_another(
    two_buses: tuple[RedisEventBus, RedisEventBus],
):
    first, second = two_buses
    due = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    async with second.subscribe() as subscription:
        await first.publish([Event("message.received", {"customer_id": 7, "due": due})])

        heard = await next_event(subscription)

    assert heard.type == "message.received"
    assert heard.data == {"customer_id": 7, "due": "2026-11-23T09:30:00+00:00"}
    assert heard.id > 0


async def test_events_of_both_processes_arrive_in_one_order_with_growing_ids(
    two_buses: tuple[RedisEventBus, RedisEventBus],
):
    first, second = two_buses
    async with first.subscribe() as on_first, second.subscribe() as on_second:
        for n in range(10):
            await (first if n % 2 else second).publish([Event("tick", {"n": n})])

        seen_first = [await next_event(on_first) for _ in range(10)]
        seen_second = [await next_event(on_second) for _ in range(10)]

    assert [e.data["n"] for e in seen_first] == list(range(10))
    assert [(e.id, e.data) for e in seen_first] == [(e.id, e.data) for e in seen_second]
    ids = [e.id for e in seen_first]
    assert ids == sorted(ids) and len(set(ids)) == 10


async def test_a_console_that_reconnects_gets_what_it_missed_from_the_replay(
    two_buses: tuple[RedisEventBus, RedisEventBus],
):
    first, second = two_buses
    async with second.subscribe() as subscription:
        await first.publish([Event("seen", {})])
        seen = await next_event(subscription)
        await first.publish([Event("missed", {"n": 1}), Event("missed", {"n": 2})])
        await next_event(subscription)
        await next_event(subscription)

    missed = second.replay(seen.id)

    assert [(e.type, e.data) for e in missed] == [("missed", {"n": 1}), ("missed", {"n": 2})]
    assert second.last_id() == missed[-1].id


async def test_with_redis_gone_publishing_drops_events_without_failing_and_resumes_after(
    private_redis: PrivateRedis,
):
    bus = RedisEventBus(private_redis.url, stream="omnihub:events")
    try:
        async with bus.subscribe() as subscription:
            await settled(bus)
            await bus.publish([Event("before", {})])
            before = await next_event(subscription)
            private_redis.stop()

            await bus.publish([Event("during", {})])
            answered_during = await bus.ready()
            private_redis.start()
            resumed = await next_event(subscription, seconds=30)
            await bus.publish([Event("after", {})])
            after = await next_event(subscription)
            answered_after = await bus.ready()
    finally:
        await bus.close()

    assert (before.type, answered_during, bus.dropped) == ("before", False, 1)
    assert resumed.type == RESUMED
    assert after.type == "after" and after.id > before.id
    assert bus.replay(before.id) is None  # from before the outage: reload
    assert [e.type for e in bus.replay(resumed.id)] == ["after"]
    assert answered_after and bus.healthy


async def test_with_redis_down_the_hub_still_stores_and_readiness_says_degraded(
    hub: Hub, private_redis: PrivateRedis
):
    settings = hub.settings.model_copy(update={"redis_url": private_redis.url})
    redis_hub = Hub.create(settings)
    app = create_app(settings, redis_hub)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            ready = (await client.get("/readyz")).json()
            private_redis.stop()
            async with redis_hub.work() as work:
                work.session.add(Customer(name="Anna Schmidt"))
                work.emit("customer.created", name="Anna Schmidt")
            degraded = await client.get("/readyz")
    finally:
        await redis_hub.close()

    assert ready == {"status": "ready", "checks": {"database": True, "redis": True}}
    assert degraded.status_code == 200
    assert degraded.json() == {"status": "degraded", "checks": {"database": True, "redis": False}}
    async with hub.sessions() as session:
        assert await session.get(Customer, 1) is not None


async def test_a_console_told_to_resync_after_redis_returns_finds_what_came_in_meanwhile(
    hub: Hub, private_redis: PrivateRedis, supervisor: SignedIn
):
    settings = hub.settings.model_copy(
        update={"redis_url": private_redis.url, "redis_stream": "omnihub:events"}
    )
    redis_hub = Hub.create(settings)
    try:
        async with serving(redis_hub, create_app(settings, redis_hub)) as base:
            ws = await console_socket(base, supervisor.email)
            try:
                private_redis.stop()
                async with httpx.AsyncClient(base_url=base) as client:
                    posted = await client.post("/channels/webform", json=CONTACT)
                private_redis.start()
                resync = await next_of_type(ws, "resync", seconds=30)
            finally:
                await ws.close()
    finally:
        await redis_hub.close()

    assert posted.status_code == 201
    assert resync["id"] > 0
    async with hub.sessions() as session:
        stored = (await session.scalars(select(Interaction))).one()
    assert stored.text == CONTACT["message"]
