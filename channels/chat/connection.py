"""One customer socket: a bounded outgoing queue, its writer, heartbeats, limits.

Frames to the client go through one queue and one writer task, so frames the
session log pushes (from the outbox dispatcher) and answers of the reader never
interleave on the wire, and a pusher never waits for a slow client: a client
that lets `send_queue` frames pile up is closed (1013) and resumes from the
session log when it reconnects. The reader takes frames with a deadline (no
hello within `hello_seconds`, or nothing for `idle_seconds`: close 4408) and
counts them in a sliding window (more than `rate_frames` in `rate_seconds`:
close 4429). The server pings every `ping_seconds`; any frame is proof of life.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from channels.chat.protocol import (
    CLOSE_FLOOD,
    CLOSE_SILENT,
    CLOSE_TRY_AGAIN,
    PING,
    CloseError,
    FrameError,
    render_error,
)
from channels.chat.sessions import ChatConfig

WRITER_DRAIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


class Disconnected(Exception):
    """The client went away."""


class RateWindow:
    """At most `limit` events in any `seconds`-long window."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.stamps: deque[float] = deque()

    def allow(self, now: float) -> bool:
        while self.stamps and now - self.stamps[0] >= self.seconds:
            self.stamps.popleft()
        self.stamps.append(now)
        return len(self.stamps) <= self.limit


class Connection:
    """The socket's two directions; `offer` never waits (see the module docstring)."""

    def __init__(self, websocket: WebSocket, config: ChatConfig) -> None:
        self.websocket = websocket
        self.config = config
        self.outgoing: asyncio.Queue[dict[str, Any] | Close] = asyncio.Queue(config.send_queue)
        self.rate = RateWindow(config.rate_frames, config.rate_seconds)
        self.opened_at = time.monotonic()
        self.greeted = False
        self.closing = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._ping())]

    def offer(self, frame: dict[str, Any]) -> None:
        if self.closing:
            return
        try:
            self.outgoing.put_nowait(frame)
        except asyncio.QueueFull:
            self.close(CLOSE_TRY_AGAIN, "slow_reader")

    def offer_error(self, error: FrameError) -> None:
        self.offer(render_error(error.code, error.message))

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued; later offers are dropped."""
        if self.closing:
            return
        self.closing = True
        if self.outgoing.full():
            self._drop_queue()  # logged frames come again from the session log
        self.outgoing.put_nowait(Close(code, reason))

    def _drop_queue(self) -> None:
        while not self.outgoing.empty():
            self.outgoing.get_nowait()

    async def _write(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                item = await self.outgoing.get()
                if isinstance(item, Close):
                    await self.websocket.close(item.code, item.reason)
                    return
                await self.websocket.send_text(json.dumps(item, ensure_ascii=False))

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.config.ping_seconds)
            self.offer(PING)

    async def receive(self) -> str:
        """The next text frame; raises `Disconnected`, `CloseError` or `FrameError`."""
        try:
            async with asyncio.timeout(self._deadline()):
                message = await self.websocket.receive()
        except TimeoutError:
            reason = "silent_too_long" if self.greeted else "hello_required"
            raise CloseError(CLOSE_SILENT, reason) from None
        if message["type"] == "websocket.disconnect":
            raise Disconnected
        self._check_rate()
        if message.get("text") is None:
            raise FrameError("binary_frame", "frames are JSON text")
        text: str = message["text"]
        return text

    def _deadline(self) -> float:
        if self.greeted:
            return self.config.idle_seconds
        waited = time.monotonic() - self.opened_at
        return max(0.0, min(self.config.idle_seconds, self.config.hello_seconds - waited))

    def _check_rate(self) -> None:
        if not self.rate.allow(time.monotonic()):
            limit = f"at most {self.config.rate_frames} frames in {self.config.rate_seconds:g} s"
            error = FrameError("rate_limited", limit)
            raise CloseError(CLOSE_FLOOD, "rate_limited", error)

    async def finish(self) -> None:
        """Let the writer send what is queued (and the close), then stop the tasks."""
        self.close(1000, "")
        writer, *others = self._tasks
        for task in others:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(writer), WRITER_DRAIN_SECONDS)
        writer.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
