"""bench.intake's console: a supervisor's socket on the hub (`WS /agent/ws`), and when
each contact's `message.received` reached it.

`bench.live_path` watches the agent's side the same way.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hub.context import Hub
from hub.models import Interaction

if TYPE_CHECKING:
    from bench.intake import Step

EMAIL, PASSWORD = "supervisor@bench.example", "bench-intake-password"
TRY_AGAIN_LATER = 1013  # the hub closed a console that fell behind: resume


@dataclass
class Console:
    """What a supervisor's console socket saw: interaction id -> when its
    `message.received` arrived. A hub closes a console that fell behind
    (1013); this one then resumes from the last event id it had, as the
    console's page does, and counts it in `resumed`."""

    seen: dict[int, float] = field(default_factory=dict)
    last_id: int = 0
    resumed: int = 0

    def note(self, message: Any) -> None:
        for frame in message if isinstance(message, list) else [message]:
            if isinstance(frame.get("id"), int):  # a resync's too: the page resumes from it
                self.last_id = max(self.last_id, frame["id"])
            if frame.get("type") == "message.received":
                interaction = frame.get("data", {}).get("interaction_id")
                if isinstance(interaction, int):
                    self.seen.setdefault(interaction, time.perf_counter())


@asynccontextmanager
async def console(base: str) -> AsyncIterator[Console]:
    """A supervisor's console socket on `base`, open for the length of the block."""
    async with httpx.AsyncClient(base_url=base) as client:
        answer = await client.post("/login", json={"email": EMAIL, "password": PASSWORD})
        answer.raise_for_status()
        cookie = f"omnihub_session={answer.cookies['omnihub_session']}"
    url = f"{base.replace('http://', 'ws://')}/agent/ws"
    headers = {"Cookie": cookie, "Origin": base}
    watched = Console()
    opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def follow() -> None:
        while True:
            resume = f"?last_event_id={watched.last_id}" if watched.last_id else ""
            async with connect(url + resume, additional_headers=headers) as ws:
                if not opened.done():
                    opened.set_result(None)
                with suppress(ConnectionClosed):
                    async for raw in ws:
                        watched.note(json.loads(raw))
            if ws.close_code != TRY_AGAIN_LATER:
                return
            watched.resumed += 1

    follower = asyncio.create_task(follow())
    try:
        await asyncio.wait({follower, opened}, return_when=asyncio.FIRST_COMPLETED)
        if not opened.done():
            await follower  # it could not connect: raise why
        yield watched
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def to_agent(hub_: Hub, step: Step, seen: dict[int, float]) -> list[float]:
    """Seconds from each request's due time to its event on the agent's socket."""
    async with hub_.sessions() as session:
        rows = await session.execute(
            select(Interaction.id, Interaction.external_id, Interaction.text).where(
                Interaction.channel.in_(("sms", "webform")),
                Interaction.occurred_at >= datetime.now(UTC) - timedelta(minutes=10),
            )
        )
        stored = list(rows)
    times = []
    for interaction, external_id, text in stored:
        marker = (external_id or "")[2:] if (external_id or "").startswith("SM") else None
        if marker is None and text:
            marker = next((w for w in text.split() if w.startswith("bench-")), None)
        if marker in step.requests and interaction in seen:
            times.append(seen[interaction] - step.requests[marker][0])
    return times
