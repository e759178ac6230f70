"""The Redis event bus: the in-process bus's interface, across hub processes.

Publishing appends each event to one Redis stream (capped near `keep`
entries). Every process runs one reader that follows the stream and hands each
event to its local subscribers and its replay buffer, so an agent's socket on
any process hears what any process published, in the stream's order. An
event's id comes from its stream id (milliseconds × 1024 + sequence), so ids
keep growing across processes and across a restart of Redis.

Redis down: the change itself is already committed, so publishing logs, counts
and drops the event instead of failing the request; `healthy` turns False
(`/readyz` reports it) and the reader reconnects with backoff. When Redis is
back, local subscribers get a `bus.resumed` event (events of the outage may be
lost: reload from the database) and a replay from before the outage answers
None, which tells a reconnecting console to reload as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.events import Event, EventQueue

log = logging.getLogger(__name__)

STREAM = "omnihub:events"
RESUMED = "bus.resumed"
SEQUENCE_BITS = 10
READ_BLOCK_MS = 1_000
MAX_BACKOFF_SECONDS = 10.0


def event_id(stream_id: bytes | str) -> int:
    """A stream id `1732312345678-3` as one increasing integer (JSON-safe below 2**53)."""
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    milliseconds, sequence = text.split("-")
    return (int(milliseconds) << SEQUENCE_BITS) + min(int(sequence), (1 << SEQUENCE_BITS) - 1)


class RedisEventBus:
    def __init__(
        self,
        url: str,
        *,
        stream: str = STREAM,
        keep: int = 10_000,
        queue_size: int = 1_000,
    ) -> None:
        self._redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._stream = stream
        self._keep = keep
        self._recent: deque[Event] = deque(maxlen=keep)
        self._subscribers: set[EventQueue] = set()
        self._queue_size = queue_size
        self._cursor: bytes | None = None  # the stream id of the last event read
        # Every event after this id is in `_recent`; a replay from before it may have gaps.
        self._horizon = 0
        self._reader: asyncio.Task[None] | None = None
        self.healthy = True
        self.dropped = 0

    # --- publishing -------------------------------------------------------------

    async def publish(self, events: list[Event]) -> None:
        if not events:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.xadd(
                        self._stream,
                        {"event": _dumps(event)},
                        maxlen=self._keep,
                        approximate=True,
                    )
                await pipe.execute()
        except (RedisError, OSError) as error:
            self.healthy = False
            self.dropped += len(events)
            log.warning("Redis event bus: %d event(s) not published: %s", len(events), error)

    # --- subscribing ------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[EventQueue]:
        self.start()
        subscriber = EventQueue(self._queue_size)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    def last_id(self) -> int:
        """The id of the newest event read (0: none yet); a page resumes from it."""
        return self._recent[-1].id if self._recent else self._horizon

    def replay(self, after_id: int) -> list[Event] | None:
        # Ids are not consecutive (they come from stream ids): the horizon says what is kept.
        if after_id < self._horizon:
            return None
        return [event for event in self._recent if event.id > after_id]

    # --- the reader -------------------------------------------------------------

    def start(self) -> None:
        """Start following the stream (idempotent; subscribing starts it too)."""
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._follow(), name="redis event bus")

    async def ready(self) -> bool:
        """Whether Redis answers now."""
        try:
            await self._redis.ping()
        except (RedisError, OSError):
            self.healthy = False
            return False
        return True

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._redis.aclose()

    async def _follow(self) -> None:
        backoff = 0.2
        outage = False
        while True:
            try:
                if self._cursor is None:
                    self._cursor = await self._end_of_stream()
                    self._horizon = event_id(self._cursor)
                if outage:
                    self._resume()
                    outage = False
                replies = await self._redis.xread(
                    {self._stream: self._cursor}, block=READ_BLOCK_MS, count=500
                )
                self.healthy = True
                backoff = 0.2
                for _stream, entries in replies:
                    for stream_id, fields in entries:
                        self._cursor = stream_id
                        self._deliver(_loads(fields[b"event"], event_id(stream_id)))
            except (RedisError, OSError) as error:
                if not outage:
                    log.warning("Redis event bus: reading the stream failed: %s", error)
                outage, self.healthy = True, False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _end_of_stream(self) -> bytes:
        newest = await self._redis.xrevrange(self._stream, count=1)
        return newest[0][0] if newest else b"0-0"

    def _resume(self) -> None:
        """After an outage: what came before may have gaps; tell the subscribers to reload."""
        self._horizon = self.last_id() + 1
        self._recent.clear()
        log.info("Redis event bus: reading again")
        resumed = Event(RESUMED, {}, self._horizon)  # a console that saw it may replay from it
        for subscriber in list(self._subscribers):
            self._offer(subscriber, resumed)

    def _deliver(self, event: Event) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._horizon = self._recent[0].id
        self._recent.append(event)
        for subscriber in list(self._subscribers):
            self._offer(subscriber, event)

    def _offer(self, subscriber: EventQueue, event: Event) -> None:
        try:
            subscriber.queue.put_nowait(event)
        except asyncio.QueueFull:
            subscriber.overflowed = True
            self._subscribers.discard(subscriber)


def _dumps(event: Event) -> str:
    return json.dumps(
        {"type": event.type, "at": event.at.isoformat(), "data": event.data},
        default=_jsonable,
        separators=(",", ":"),
    )


def _loads(raw: bytes, id_: int) -> Event:
    body = json.loads(raw)
    at = datetime.fromisoformat(body["at"]).astimezone(UTC)
    return Event(body["type"], body["data"], id_, at)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
