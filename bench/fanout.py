"""Fan-out: one event to 500 agent consoles while 5,000 customer chat sockets are open.

On one uvicorn server of the hub's app (this process, 127.0.0.1), opens
`--chats` customer chat sockets (said hello, then idle) and `--consoles` agent
sockets (`WS /agent/ws`, each signed in as its own supervisor, who may see
every conversation). Then, `--events` times, it publishes one
`message.received` event on the hub's bus and measures the time until the
last console has read it: the fan-out of one event to every console.

The baseline, in the same run and process: a bare `websockets` server with
the same number of clients, where the server calls `websockets.broadcast()`
with the very frame the hub sent, timed the same way. Both servers and their
clients are open together, and each marker goes through both in a new random
order per round (as `bench.harness` interleaves cases), so the machine's
noise hits both alike.

Goal (issue 10): the hub's p99 within 2x of the bare broadcast's.

Garbage collection: the server, the clients and the baseline share this
process, so a full collection stalls all of them. The hub's app freezes its
start-up heap (`hub.heap`) as its lifespan does in `omnihub serve`; once all
sockets are open, one collection takes the opening's garbage before the
clock starts. Without it, the collection that the opening of
thousands of sockets made due landed among the first timed events: one stall
of 200-700 ms on a busy 2-core machine, the p99 of 50 events.

    python -m bench.fanout                              # SQLite in a temporary file
    python -m bench.fanout --consoles 50 --chats 500    # CI-sized
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from argon2 import PasswordHasher
from websockets import broadcast
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import hub.agents
from agent_ui.socket import Feed
from bench.chat import open_client, raise_file_limit, serving
from bench.harness import (
    Figures,
    Summary,
    add_database_arguments,
    figures,
    scratch_database,
    summarise,
)
from hub.app import create_app
from hub.context import Hub
from hub.db import migrate
from hub.events import Event
from hub.heap import settle_start_up_heap
from hub.settings import load_settings

GOAL = 2.0
PASSWORD = "fan-out-password-0123"  # noqa: S105 - throw-away agents of a scratch database
OPEN_BATCH = 100


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database_arguments(parser)
    parser.add_argument("--consoles", type=int, default=500, help="agent sockets")
    parser.add_argument("--chats", type=int, default=5_000, help="idle customer chat sockets")
    parser.add_argument("--events", type=int, default=200, help="events timed")
    parser.add_argument("--warmup", type=int, default=10, help="events not timed")
    return parser.parse_args(argv)


class Arrivals:
    """When the last of `expected` readers saw each marker."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen: dict[int, int] = defaultdict(int)
        self.complete: dict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.last_at: dict[int, float] = {}

    def saw(self, marker: int) -> None:
        self.seen[marker] += 1
        if self.seen[marker] == self.expected:
            self.last_at[marker] = time.perf_counter()
            self.complete[marker].set()


async def read_markers(ws: ClientConnection, arrivals: Arrivals) -> None:
    try:
        async for raw in ws:
            message = json.loads(raw)
            for frame in message if isinstance(message, list) else [message]:
                marker = frame.get("data", {}).get("interaction_id")
                if isinstance(marker, int):
                    arrivals.saw(marker)
    except ConnectionClosed:
        return


class Side:
    """One side of the comparison: how it sends marker n, and when its readers saw it."""

    def __init__(self, send: Callable[[int], object], arrivals: Arrivals) -> None:
        self.send = send
        self.arrivals = arrivals
        self.timed: list[float] = []

    async def time_one(self, number: int, counted: bool) -> None:
        started = time.perf_counter()
        result = self.send(number)
        if asyncio.iscoroutine(result):
            await result
        await asyncio.wait_for(self.arrivals.complete[number].wait(), 60)
        if counted:
            self.timed.append(self.arrivals.last_at[number] - started)


async def time_events(sides: list[Side], events: int, warmup: int, seed: int = 1) -> None:
    """Each marker through every side in a new random order per round, after `warmup` rounds,
    so that the machine's noise hits the hub and its baseline alike."""
    shuffler = random.Random(seed)
    for number in range(1, 1 + warmup + events):
        for side in shuffler.sample(sides, len(sides)):
            await side.time_one(number, counted=number > warmup)


def event_for(marker: int) -> Event:
    data = {"conversation_id": marker, "customer_id": 1, "interaction_id": marker}
    return Event("message.received", {**data, "channel": "webform", "direction": "inbound"})


# --- the hub ------------------------------------------------------------------


async def make_agents(hub_: Hub, count: int) -> list[str]:
    async with hub_.work() as work:
        for number in range(count):
            await hub.agents.create_agent(
                work.session,
                f"console{number}@bench.example",
                f"Console {number}",
                "supervisor",
                PASSWORD,
            )
    return [f"console{number}@bench.example" for number in range(count)]


async def sign_in(http_base: str, emails: list[str]) -> list[str]:
    """The session cookie of each agent, from the sign-in the console uses."""
    cookies = []
    async with httpx.AsyncClient(base_url=http_base) as client:
        for email in emails:
            answer = await client.post("/login", json={"email": email, "password": PASSWORD})
            answer.raise_for_status()
            cookies.append(f"omnihub_session={answer.cookies['omnihub_session']}")
            client.cookies.clear()
    return cookies


async def open_consoles(ws_base: str, cookies: list[str]) -> list[ClientConnection]:
    origin = ws_base.replace("ws://", "http://")
    opened: list[ClientConnection] = []
    for start in range(0, len(cookies), OPEN_BATCH):
        opened += await asyncio.gather(
            *(
                connect(
                    f"{ws_base}/agent/ws",
                    additional_headers={"Cookie": cookie, "Origin": origin},
                    open_timeout=60,
                    ping_interval=None,
                )
                for cookie in cookies[start : start + OPEN_BATCH]
            )
        )
    return opened


@asynccontextmanager
async def hub_side(url: str, arguments: argparse.Namespace) -> AsyncIterator[Side]:
    hub_ = Hub.create(load_settings(_env_file=None, database_url=url))
    try:
        emails = await make_agents(hub_, arguments.consoles)
        app = create_app(hub_.settings, hub_)
        settle_start_up_heap()  # as the app's lifespan does (`serving` runs none of it)
        async with serving(app) as ws_base:
            cookies = await sign_in(ws_base.replace("ws://", "http://"), emails)
            chats = []
            for start in range(0, arguments.chats, OPEN_BATCH):
                numbers = range(start, min(arguments.chats, start + OPEN_BATCH))
                chats += await asyncio.gather(
                    *(open_client(f"{ws_base}/channels/chat/ws", n) for n in numbers)
                )
            consoles = await open_consoles(ws_base, cookies)
            arrivals = Arrivals(len(consoles))
            readers = [asyncio.create_task(read_markers(ws, arrivals)) for ws in consoles]

            async def publish(marker: int) -> None:
                await hub_.bus.publish([event_for(marker)])

            try:
                yield Side(publish, arrivals)
            finally:
                for ws in [*consoles, *(ws for ws, _ in chats)]:
                    await ws.close()
                await asyncio.gather(*readers, return_exceptions=True)
    finally:
        await hub_.close()


# --- the baseline ---------------------------------------------------------------


@asynccontextmanager
async def bare_server() -> AsyncIterator[tuple[str, set[ServerConnection]]]:
    connections: set[ServerConnection] = set()

    async def handler(connection: ServerConnection) -> None:
        connections.add(connection)
        try:
            await connection.wait_closed()
        finally:
            connections.discard(connection)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    async with serve(handler, sock=listener, ping_interval=None) as server:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}", connections
        server.close()


@asynccontextmanager
async def bare_side(arguments: argparse.Namespace, frame: str) -> AsyncIterator[Side]:
    async with bare_server() as (base, connections):
        clients: list[ClientConnection] = []
        for start in range(0, arguments.consoles, OPEN_BATCH):
            count = min(OPEN_BATCH, arguments.consoles - start)
            clients += await asyncio.gather(
                *(connect(base, ping_interval=None, open_timeout=60) for _ in range(count))
            )
        while len(connections) < arguments.consoles:  # noqa: ASYNC110 (the handler fills it)
            await asyncio.sleep(0.01)
        arrivals = Arrivals(len(clients))
        readers = [asyncio.create_task(read_markers(ws, arrivals)) for ws in clients]
        template = json.loads(frame)

        def send(marker: int) -> None:
            template["data"]["interaction_id"] = marker
            broadcast(connections, json.dumps(template))

        try:
            yield Side(send, arrivals)
        finally:
            for ws in clients:
                await ws.close()
            await asyncio.gather(*readers, return_exceptions=True)


async def run(arguments: argparse.Namespace) -> None:
    raise_file_limit(arguments.consoles * 3 + arguments.chats)
    hub.agents.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    # The very frame a console gets, so both sides send the same bytes.
    frame = json.dumps(Feed.frame(event_for(0)))
    async with scratch_database(arguments.database_url, arguments.postgres) as url:
        await migrate(url)
        print(
            f"bench.fanout: {arguments.consoles} consoles, {arguments.chats} idle chat sockets, "
            f"{arguments.events} events after {arguments.warmup} untimed, interleaved"
        )
        async with hub_side(url, arguments) as mine, bare_side(arguments, frame) as bare:
            gc.collect()  # the opening's garbage, not the events': see the module docstring
            await time_events([mine, bare], arguments.events, arguments.warmup)
    hub_figures, bare_figures = figures(mine.timed), figures(bare.timed)
    print(f"  {'':<36}  {'p50 ms':>8}  {'p99 ms':>8}")
    for label, shown in (
        ("bare websockets.broadcast()", bare_figures),
        ("hub: bus event to every console", hub_figures),
    ):
        print(f"  {label:<36}  {shown.p50:>8.2f}  {shown.p99:>8.2f}")
    report(arguments, hub_figures, bare_figures)


def report(arguments: argparse.Namespace, mine: Figures, base: Figures) -> None:
    ratio = mine.p99 / base.p99
    summarise(
        Summary(
            f"fan-out: an event to {arguments.consoles} consoles, {arguments.chats} chats open",
            f"p99 {mine.p99:.1f} ms (p50 {mine.p50:.1f})",
            f"bare websockets.broadcast() p99 {base.p99:.1f} ms",
            ratio,
            f"within {GOAL:g}x",
            ratio <= GOAL,
        )
    )


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_arguments(argv)))


if __name__ == "__main__":
    main()
