"""Leases: background work that must run once, however many hub processes run.

A lease is a row (`leases`: name, holder, expires_at) that one process holds
for `ttl` seconds at a time and renews well before it runs out. `run_leased`
runs a job only while its process holds the job's lease: the others wait and
try again, so when the holder dies (killed, machine gone) a survivor takes the
work over within one `ttl`. A holder that fails to renew (the database went
away, or it stalled past its expiry) stops its job at once, because by then
another process may have taken over.

The same rows work on SQLite and PostgreSQL; they need no advisory locks and
survive a connection pooler. Clocks of the machines are trusted to within a
fraction of `ttl`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import SQLAlchemyError

from hub.context import Hub
from hub.db import insert_for
from hub.models import Lease, utcnow

log = logging.getLogger(__name__)

Job = Callable[[asyncio.Event], Awaitable[None]]
TTL_SECONDS = 30.0


def holder_name() -> str:
    """This process, recognisably: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def take_lease(hub: Hub, name: str, holder: str, ttl: float = TTL_SECONDS) -> bool:
    """Take or renew the lease; True when `holder` holds it for the next `ttl` seconds."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl)
    async with hub.work() as work:
        renewed = await work.session.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
            .values(holder=holder, expires_at=expires)
        )
        if renewed.rowcount:
            return True
        created = await work.session.execute(
            insert_for(work.session)(Lease)
            .values(name=name, holder=holder, expires_at=expires)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return bool(created.rowcount)


async def release_lease(hub: Hub, name: str, holder: str) -> None:
    """Give the lease up, so that another process need not wait for its expiry."""
    async with hub.work() as work:
        await work.session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


def leased(hub: Hub, name: str, job: Job) -> Job:
    """`job`, run only while this process holds the lease `name`."""

    async def run(stop: asyncio.Event) -> None:
        await run_leased(hub, name, job, stop)

    return run


async def run_leased(
    hub: Hub, name: str, job: Job, stop: asyncio.Event, ttl: float = TTL_SECONDS
) -> None:
    """Run `job` whenever this process holds the lease `name`, until `stop` is set."""
    holder = holder_name()
    while not stop.is_set():
        if await _try(take_lease(hub, name, holder, ttl)):
            log.info("lease %s: taken by %s", name, holder)
            await _hold(hub, name, holder, job, stop, ttl)
        await _sleep(stop, ttl / 3)


async def _hold(
    hub: Hub, name: str, holder: str, job: Job, stop: asyncio.Event, ttl: float
) -> None:
    """Run the job while renewing the lease; stop it when the lease or the hub ends."""
    job_stop = asyncio.Event()
    task = asyncio.create_task(job(job_stop), name=f"leased {name}")
    try:
        while not (stop.is_set() or task.done()):
            await _sleep_or_done(stop, task, ttl / 3)
            if stop.is_set() or task.done():
                break
            if not await _try(take_lease(hub, name, holder, ttl)):
                log.warning("lease %s: lost by %s; stopping its work", name, holder)
                break
    finally:
        job_stop.set()
        await asyncio.gather(task, return_exceptions=True)
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("lease %s: the job failed", name, exc_info=task.exception())
        await _try(release_lease(hub, name, holder))


async def _try(step: Awaitable[bool | None]) -> bool:
    try:
        return bool(await step)
    except (SQLAlchemyError, OSError) as error:
        log.warning("lease: the database did not answer: %s", error)
        return False


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _sleep_or_done(stop: asyncio.Event, task: asyncio.Task[None], seconds: float) -> None:
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter, task}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
