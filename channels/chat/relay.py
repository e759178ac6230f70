"""Agent typing, from the event bus to the customer's sockets (never stored).

Whoever shows an agent typing (the console) publishes `typing.started` with
`{"channel": "chat", "from": "agent", "chat_id": ...}`; this job, one per
process, offers `{"type": "typing", "from": "agent"}` to that session's
sockets in this process. With the Redis bus every process hears it, so it
reaches the socket wherever it is held.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from channels.chat.handlers import TYPING_EVENT
from channels.chat.protocol import AGENT_TYPING
from channels.chat.sessions import ChatRegistry
from hub.context import Hub
from hub.events import Event


def is_agent_typing(event: Event) -> bool:
    data = event.data
    return (
        event.type == TYPING_EVENT
        and data.get("channel") == "chat"
        and data.get("from") == "agent"
        and isinstance(data.get("chat_id"), str)
    )


class TypingRelay:
    def __init__(self, hub: Hub, registry: ChatRegistry) -> None:
        self.hub = hub
        self.registry = registry

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set."""
        async with self.hub.bus.subscribe() as subscription:
            stopping = asyncio.create_task(stop.wait())
            try:
                while not stop.is_set():
                    await self._relay_next(subscription, stopping)
            finally:
                stopping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stopping

    async def _relay_next(self, subscription: Any, stopping: asyncio.Task[Any]) -> None:
        getting = asyncio.create_task(subscription.get())
        done, _ = await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if getting not in done:
            getting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getting
            return
        event = getting.result()
        if is_agent_typing(event):
            self.registry.push(event.data["chat_id"], AGENT_TYPING)
