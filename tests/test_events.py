"""The in-process event bus: after-commit delivery, ordered ids, replay after a reconnect."""

from __future__ import annotations

import asyncio

import pytest

from hub.context import Hub
from hub.events import Event, InProcessEventBus


async def test_a_subscriber_hears_events_in_order_with_increasing_ids():
    bus = InProcessEventBus()
    async with bus.subscribe() as subscription:
        await bus.publish(
            [Event("message.received", {"n": 1}), Event("message.received", {"n": 2})]
        )
        first, second = await subscription.get(), await subscription.get()

    assert (first.data, second.data) == ({"n": 1}, {"n": 2})
    assert second.id == first.id + 1


async def test_a_reconnecting_subscriber_gets_what_it_missed_from_its_last_id():
    bus = InProcessEventBus()
    await bus.publish([Event("a.happened", {}), Event("b.happened", {}), Event("c.happened", {})])

    missed = bus.replay(after_id=1)

    assert [event.type for event in missed] == ["b.happened", "c.happened"]


async def test_replay_says_so_when_the_missed_events_are_no_longer_kept():
    bus = InProcessEventBus(keep=2)
    await bus.publish([Event(f"e{n}.happened", {}) for n in range(5)])

    assert bus.replay(after_id=1) is None
    assert [event.type for event in bus.replay(after_id=3)] == ["e3.happened", "e4.happened"]


async def test_a_stalled_subscriber_is_dropped_instead_of_blocking_the_hub():
    bus = InProcessEventBus(queue_size=2)
    async with bus.subscribe() as subscription:
        await asyncio.wait_for(bus.publish([Event(f"e{n}.happened", {}) for n in range(10)]), 1)

        assert subscription.overflowed


async def test_events_of_a_rolled_back_unit_of_work_are_never_published(hub: Hub):
    with pytest.raises(RuntimeError):
        async with hub.work() as work:
            work.emit("customer.created", customer_id=1)
            raise RuntimeError("the change fails")

    async with hub.work() as work:
        work.emit("customer.updated", customer_id=1)

    assert [event.type for event in hub.bus.replay(0)] == ["customer.updated"]
