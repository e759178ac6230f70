"""Leases: background work runs in one process at a time, and a survivor takes it over."""

from __future__ import annotations

import asyncio

from hub.context import Hub
from hub.leases import release_lease, run_leased, take_lease

TTL = 0.6


async def test_only_one_holder_has_a_lease_until_it_expires_or_is_released(hub: Hub):
    first = await take_lease(hub, "imap intake", "first", ttl=60)
    second = await take_lease(hub, "imap intake", "second", ttl=60)
    renewed = await take_lease(hub, "imap intake", "first", ttl=60)
    other_work = await take_lease(hub, "routing timers", "second", ttl=60)
    await release_lease(hub, "imap intake", "first")
    after_release = await take_lease(hub, "imap intake", "second", ttl=60)

    assert (first, second, renewed, other_work, after_release) == (True, False, True, True, True)


async def test_an_expired_lease_goes_to_whoever_asks_next(hub: Hub):
    await take_lease(hub, "imap intake", "vanished", ttl=0.05)
    await asyncio.sleep(0.1)

    assert await take_lease(hub, "imap intake", "survivor", ttl=60)
    assert not await take_lease(hub, "imap intake", "vanished", ttl=60)


class Recorder:
    """A job that notes which process runs it, and when it was running."""

    def __init__(self, process: str, log: list[str]) -> None:
        self.process = process
        self.log = log
        self.running = asyncio.Event()

    async def __call__(self, stop: asyncio.Event) -> None:
        self.log.append(f"{self.process} started")
        self.running.set()
        await stop.wait()
        self.running.clear()
        self.log.append(f"{self.process} stopped")


async def test_of_two_processes_one_runs_the_work_and_the_other_takes_over_when_it_stops(
    hub: Hub,
):
    log: list[str] = []
    one, two = Recorder("one", log), Recorder("two", log)
    stop_one, stop_two = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(run_leased(hub, "campaign batching", one, stop_one, ttl=TTL))
    await asyncio.wait_for(one.running.wait(), 5)
    second = asyncio.create_task(run_leased(hub, "campaign batching", two, stop_two, ttl=TTL))
    await asyncio.sleep(TTL * 2)  # several renewals: the second never gets a turn
    both_at_once = one.running.is_set() and two.running.is_set()

    stop_one.set()
    await asyncio.wait_for(first, 5)
    await asyncio.wait_for(two.running.wait(), 5)
    stop_two.set()
    await asyncio.wait_for(second, 5)

    assert not both_at_once
    assert log == ["one started", "one stopped", "two started", "two stopped"]


async def test_a_holder_that_died_without_releasing_is_replaced_after_its_lease_ran_out(
    hub: Hub,
):
    # A process killed while holding the lease: its row stays until it expires.
    await take_lease(hub, "imap intake", "killed process", ttl=TTL * 3)
    survivor = Recorder("survivor", [])
    stop = asyncio.Event()
    task = asyncio.create_task(run_leased(hub, "imap intake", survivor, stop, ttl=TTL))
    await asyncio.sleep(0.1)
    while_the_dead_one_holds_it = survivor.running.is_set()

    await asyncio.wait_for(survivor.running.wait(), TTL * 10)
    stop.set()
    await asyncio.wait_for(task, 5)

    assert not while_the_dead_one_holds_it
    assert survivor.log == ["survivor started", "survivor stopped"]
