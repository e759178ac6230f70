"""The event bus: what happened in the hub, for the console and routing to follow.

Events are published only after the transaction that caused them committed, so
a subscriber never sees a change it cannot read. Each event carries an id that
increases per bus; a subscriber that reconnects asks for what it missed with
`replay(after_id)` (as Zulip's event queues do). The in-process bus serves one
hub process; the Redis bus (for several processes) implements the same
interface.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Event:
    """`type` is `noun.past_verb`, e.g. `message.received`."""

    type: str
    data: dict[str, Any]
    id: int = 0
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "at": self.at.isoformat(), "data": self.data}


class Subscription(Protocol):
    async def get(self) -> Event: ...


class EventBus(Protocol):
    async def publish(self, events: list[Event]) -> None: ...

    def subscribe(self) -> Any:
        """An async context manager yielding a `Subscription`."""

    def replay(self, after_id: int) -> list[Event] | None:
        """Events after `after_id`, or None when they are no longer kept."""

    def last_id(self) -> int:
        """The id of the newest event (0: none yet)."""

    async def close(self) -> None: ...


class EventQueue:
    """A subscriber's live queue; `overflowed` once it fell too far behind."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.overflowed = False

    async def get(self) -> Event:
        return await self.queue.get()


class InProcessEventBus:
    """Fan-out inside one process, with a bounded replay buffer."""

    def __init__(self, keep: int = 10_000, queue_size: int = 1_000) -> None:
        self._ids = itertools.count(1)
        self._recent: deque[Event] = deque(maxlen=keep)
        self._subscribers: set[EventQueue] = set()
        self._queue_size = queue_size

    async def publish(self, events: list[Event]) -> None:
        for event in events:
            stamped = Event(event.type, event.data, next(self._ids), event.at)
            self._recent.append(stamped)
            for subscriber in list(self._subscribers):
                self._offer(subscriber, stamped)

    def _offer(self, subscriber: EventQueue, event: Event) -> None:
        try:
            subscriber.queue.put_nowait(event)
        except asyncio.QueueFull:
            # A stalled subscriber loses its live queue, not the hub's time: it
            # resumes from the replay buffer when it reads again.
            subscriber.overflowed = True
            self._subscribers.discard(subscriber)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[EventQueue]:
        subscriber = EventQueue(self._queue_size)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    def last_id(self) -> int:
        """The id of the newest event published (0: none yet); a page resumes from it."""
        return self._recent[-1].id if self._recent else 0

    async def close(self) -> None:
        """Nothing to let go of: each subscription ends with its own block."""

    def replay(self, after_id: int) -> list[Event] | None:
        if self._recent and after_id < self._recent[0].id - 1:
            return None
        return [event for event in self._recent if event.id > after_id]
