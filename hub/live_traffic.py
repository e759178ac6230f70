"""Live traffic first: the requests being served now, and a gap for bulk work to wait for.

Every HTTP request passes `LiveTrafficMiddleware`, which counts it in flight
and records its metrics (by method, route and status; its duration); a chat
frame counts while its handler runs (`channels.chat.handlers.handle`). Bulk
work in the same process, a campaign's sending, asks `LiveTraffic.gap()`
before each message: while a request is in flight it waits, for a moment at
most, until none is. A campaign can wait; the customer on the line cannot
(issue 10: the live path at most 1.5x slower while a campaign sends). Under
unbroken live load the campaign still moves, a message per moment at least.

What it cannot see: a campaign sent by another process on the same machine
competes for the cores and the database all the same.

The middleware is plain ASGI: Starlette's `BaseHTTPMiddleware` runs the app in
a task of its own and streams the answer through a queue, which cost about a
tenth of a web-form post's CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.metrics import Metrics

GAP_SECONDS = 0.05  # the longest a bulk step waits for live traffic to pause


class LiveTraffic:
    """How many HTTP requests and chat frames this process is serving right now."""

    def __init__(self) -> None:
        self.in_flight = 0
        # Futures of the running loop, not an asyncio.Event: a hub outlives the
        # event loop of a test or a CLI command, and an Event is bound to the first.
        self._waiting: list[asyncio.Future[None]] = []

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Count what runs inside as in flight."""
        self.started()
        try:
            yield
        finally:
            self.ended()

    def started(self) -> None:
        self.in_flight += 1

    def ended(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            waiting, self._waiting = self._waiting, []
            for future in waiting:
                if not future.done():
                    future.set_result(None)

    async def gap(self) -> None:
        """Return once no request is in flight, or after GAP_SECONDS."""
        if self.in_flight == 0:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, GAP_SECONDS)
        finally:
            # Under unbroken traffic no gap comes to take it out: every timed-out
            # wait would stay listed for as long as that lasts.
            if future in self._waiting:
                self._waiting.remove(future)


class LiveTrafficMiddleware:
    """Count each HTTP request in flight while it runs, then record its metrics."""

    def __init__(self, app: ASGIApp, live: LiveTraffic, metrics: Metrics) -> None:
        self.app = app
        self.live = live
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # unless the app answers: an error it raises is a 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with self.live.serving():
                await self.app(scope, receive, send_noting_status)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, path, str(status)).inc()
            self.metrics.request_seconds.labels(method, path).observe(perf_counter() - started)
