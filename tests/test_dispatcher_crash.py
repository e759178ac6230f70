"""Crash safety: a dispatcher killed mid-delivery, and two dispatchers on one database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.context import Hub
from hub.delivery import Receipt, RecordingSender
from hub.dispatcher import Dispatcher
from hub.models import OutboxMessage, utcnow
from hub.outbox import Message, enqueue
from hub.values import Outbound
from tests.conftest import SECRET

ROOT = Path(__file__).resolve().parent.parent
LEASE_SECONDS = 2


async def queue_many(hub: Hub, count: int) -> None:
    async with hub.work() as work:
        for n in range(count):
            await enqueue(
                work,
                Message(
                    idempotency_key=f"m{n}",
                    channel="email",
                    recipient=f"c{n}@example.com",
                    purpose="service",
                    text="Hallo",
                ),
                hub.policy,
            )


async def rows(hub: Hub) -> list[OutboxMessage]:
    async with hub.sessions() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def start_hanging_dispatcher(database_url: str, marker: Path) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")},
        "OMNIHUB_DATABASE_URL": database_url,
        "OMNIHUB_SECRET_KEY": SECRET,
        "OMNIHUB_OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.peers.hanging_dispatcher", str(marker)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def wait_for(marker: Path, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not marker.exists():  # noqa: ASYNC240 - a cheap stat in a polling test
        if process.poll() is not None:
            pytest.fail(f"the dispatcher process ended early: {process.stdout.read().decode()}")
        if time.monotonic() > deadline:
            pytest.fail("the dispatcher process never claimed the message")
        await asyncio.sleep(0.05)


async def test_a_dispatcher_killed_mid_delivery_leaves_the_row_to_be_sent_exactly_once(
    hub: Hub, tmp_path: Path
):
    await queue_many(hub, 1)
    marker = tmp_path / "handed-over"
    process = start_hanging_dispatcher(hub.settings.database_url, marker)
    try:
        await wait_for(marker, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
    (claimed,) = await rows(hub)
    sender = RecordingSender()
    survivor = Dispatcher(hub, {"email": sender})

    during_lease = await survivor.dispatch_once()
    await asyncio.sleep(max(0.0, (claimed.lease_until - utcnow()).total_seconds()) + 0.1)
    after_lease = await survivor.dispatch_once()
    again = await survivor.dispatch_once()

    assert (claimed.status, claimed.attempts) == ("sending", 1)
    assert claimed.lease_until - utcnow() <= timedelta(seconds=LEASE_SECONDS)
    assert (during_lease, after_lease, again) == (0, 1, 0)
    assert [o.idempotency_key for o in sender.sent] == ["m0"]
    (sent,) = await rows(hub)
    assert (sent.status, sent.attempts) == ("sent", 2)


class SlowSender(RecordingSender):
    async def send(self, outbound: Outbound) -> Receipt:
        await asyncio.sleep(0.001)
        return await super().send(outbound)


async def test_several_dispatchers_on_one_database_never_send_a_row_twice(hub: Hub):
    if hub.settings.is_sqlite:
        pytest.skip("SQLite has one writer at a time; the concurrent claim is PostgreSQL's")
    await queue_many(hub, 400)
    hubs = [hub] + [Hub.create(hub.settings) for _ in range(3)]
    senders = [SlowSender() for _ in hubs]
    dispatchers = [
        Dispatcher(h, {"email": sender}, name=f"d{n}", batch=5)
        for n, (h, sender) in enumerate(zip(hubs, senders, strict=True))
    ]

    async def drain(dispatcher: Dispatcher) -> None:
        while await dispatcher.dispatch_once():
            pass

    try:
        await asyncio.gather(*(drain(d) for d in dispatchers))
    finally:
        for other in hubs[1:]:
            await other.close()

    keys = [o.idempotency_key for sender in senders for o in sender.sent]
    assert sorted(keys) == sorted(f"m{n}" for n in range(400))
    assert all(sender.sent for sender in senders), "every dispatcher took a share"
    assert {row.status for row in await rows(hub)} == {"sent"}
