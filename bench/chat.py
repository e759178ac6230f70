"""Many live chat sockets at once: send to ack, send to the agents' event, against bare echo.

Holds `--clients` (default 1,000) customer sockets open on one uvicorn server
of the hub's app (127.0.0.1, `ws="websockets-sansio"`), each saying hello and
then sending a message every `--interval` seconds (first at a random offset)
for `--seconds` (default 30). It reports p50/p99 of

- send to ack: the client's clock, from sending `message` to reading its `ack`
  (the ack follows the commit);
- send to event: from sending to the hub publishing `message.received` (a
  subscriber on the hub's bus, matched to the message by the stored
  interaction's `<session>:<client_id>` after the run);

beside the same clients, timing, and pacing against a bare FastAPI websocket
that answers each message with an ack at once (the floor of uvicorn, the
websocket stack and this client), run after the hub in the same process; and
the ratio of each to that baseline.

The server runs as a task on the clients' event loop (the hub's database pool
belongs to one loop), so client and server share one core: the figures are a
comparison, not a capacity.

Run from the repository root::

    python -m bench.chat                       # SQLite in a temporary file
    python -m bench.chat --postgres            # a scratch database on 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

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
from hub.models import Interaction
from hub.settings import load_settings

CONNECT_BATCH = 100
START_SECONDS = 10.0
STOP_SECONDS = 15.0
DRAIN_SECONDS = 10.0
FDS_PER_CLIENT = 3  # the client's socket, the server's, and room for the database


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chat",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=1000, help="sockets held at once")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long each sends")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between messages")
    add_database_arguments(parser)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


@dataclass
class Timings:
    """Send times by `<session>:<client_id>`, and the seconds each took to its ack."""

    sent: dict[str, float] = field(default_factory=dict)
    to_ack: list[float] = field(default_factory=list)
    unanswered: int = 0


def raise_file_limit(clients: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = clients * FDS_PER_CLIENT + 200
    if soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        if ceiling < wanted:
            print(f"warning: open files limited to {ceiling}; {wanted} wanted")


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` under uvicorn on 127.0.0.1 and a free port, on this loop; its socket URL base."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        ws="websockets-sansio",
        lifespan="off",
        log_config=None,
        access_log=False,
        backlog=4096,
        timeout_graceful_shutdown=int(STOP_SECONDS),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(START_SECONDS):
            while not server.started:  # noqa: ASYNC110 (uvicorn sets a flag, not an event)
                await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, STOP_SECONDS * 2)
        listener.close()


def echo_app() -> FastAPI:
    """The baseline: a socket that acks every `message` at once, storing nothing."""
    app = FastAPI()

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                frame = json.loads(await websocket.receive_text())
                if frame["type"] == "hello":
                    welcome = {"type": "welcome", "session": frame.get("name", "")}
                    await websocket.send_text(json.dumps(welcome))
                elif frame["type"] == "message":
                    ack = {"type": "ack", "client_id": frame["client_id"], "seq": 0}
                    await websocket.send_text(json.dumps(ack))
        except WebSocketDisconnect:
            return

    return app


async def open_client(url: str, number: int) -> tuple[ClientConnection, str]:
    ws = await connect(url, open_timeout=30, close_timeout=5, ping_interval=None)
    await ws.send(json.dumps({"type": "hello", "name": f"client{number}"}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if frame["type"] == "welcome":
            return ws, frame["session"]


async def chat_as(
    ws: ClientConnection, session: str, arguments: argparse.Namespace, timings: Timings
) -> None:
    """Send every interval until the time is up; record each message's time to its ack."""
    pending: dict[str, float] = {}
    reader = asyncio.create_task(read_acks(ws, session, pending, timings))
    stop = time.monotonic() + arguments.seconds
    await asyncio.sleep(random.uniform(0, arguments.interval))
    number = 0
    try:
        while time.monotonic() < stop:
            number += 1
            client_id = f"m{number}"
            sent = time.perf_counter()
            pending[client_id] = timings.sent[f"{session}:{client_id}"] = sent
            await ws.send(json.dumps({"type": "message", "client_id": client_id, "text": "Hi"}))
            await asyncio.sleep(arguments.interval)
        async with asyncio.timeout(DRAIN_SECONDS):
            while pending:  # noqa: ASYNC110 (the reader empties it)
                await asyncio.sleep(0.05)
    except TimeoutError:
        pass
    finally:
        timings.unanswered += len(pending)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await ws.close()


async def read_acks(
    ws: ClientConnection, session: str, pending: dict[str, float], timings: Timings
) -> None:
    try:
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "ack" and frame["client_id"] in pending:
                timings.to_ack.append(time.perf_counter() - pending.pop(frame["client_id"]))
            elif frame["type"] == "ping":
                await ws.send('{"type": "pong"}')
    except ConnectionClosed:
        return


async def drive(url: str, arguments: argparse.Namespace) -> Timings:
    """Open every client (in batches, as a crowd arrives), then let them all chat at once."""
    random.seed(arguments.seed)
    timings = Timings()
    opened: list[tuple[ClientConnection, str]] = []
    for start in range(0, arguments.clients, CONNECT_BATCH):
        numbers = range(start, min(arguments.clients, start + CONNECT_BATCH))
        opened += await asyncio.gather(*(open_client(url, n) for n in numbers))
    await asyncio.gather(*(chat_as(ws, session, arguments, timings) for ws, session in opened))
    return timings


async def event_times(hub: Hub, seen: dict[int, float], ready: asyncio.Event) -> None:
    """When each chat message's `message.received` reached a subscriber on the hub's bus."""
    async with hub.bus.subscribe() as subscription:
        ready.set()
        while True:
            event = await subscription.get()
            if event.type == "message.received" and event.data.get("channel") == "chat":
                seen[event.data["interaction_id"]] = time.perf_counter()


async def to_event(hub: Hub, timings: Timings, seen: dict[int, float]) -> list[float]:
    async with hub.sessions() as db:
        rows = await db.execute(
            select(Interaction.id, Interaction.external_id).where(Interaction.channel == "chat")
        )
        keys = {interaction: key for interaction, key in rows}
    return [at - timings.sent[keys[interaction]] for interaction, at in seen.items()]


async def run_hub(url: str, arguments: argparse.Namespace) -> tuple[Timings, list[float]]:
    hub = Hub.create(load_settings(_env_file=None, database_url=url))
    seen: dict[int, float] = {}
    ready = asyncio.Event()
    listener = asyncio.create_task(event_times(hub, seen, ready))
    try:
        await ready.wait()
        async with serving(create_app(hub.settings, hub)) as base:
            timings = await drive(f"{base}/channels/chat/ws", arguments)
        return timings, await to_event(hub, timings, seen)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await hub.close()


def row(name: str, mine: Figures, base: Figures | None, count: int) -> str:
    line = f"{name:<22}  {count:>7}  {mine.p50:>9.2f}  {mine.p99:>9.2f}"
    if base is not None:
        line += f"  {mine.p50 / base.p50:>6.1f}x  {mine.p99 / base.p99:>6.1f}x"
    return line


async def run(arguments: argparse.Namespace) -> None:
    raise_file_limit(arguments.clients)
    async with scratch_database(arguments.database_url, arguments.postgres) as url:
        await migrate(url)
        engine = url.split(":", 1)[0]
        print(
            f"{arguments.clients} clients, a message every {arguments.interval:g} s "
            f"for {arguments.seconds:g} s each; {engine}"
        )
        hub_timings, hub_events = await run_hub(url, arguments)
    async with serving(echo_app()) as base:
        echo_timings = await drive(f"{base}/ws", arguments)

    echo = figures(echo_timings.to_ack)
    print(f"{'':<22}  {'samples':>7}  {'p50 ms':>9}  {'p99 ms':>9}  {'p50 x':>7}  {'p99 x':>7}")
    print(row("echo: send to ack", echo, None, len(echo_timings.to_ack)))
    print(row("hub: send to ack", figures(hub_timings.to_ack), echo, len(hub_timings.to_ack)))
    print(row("hub: send to event", figures(hub_events), echo, len(hub_events)))
    to_ack = figures(hub_timings.to_ack)
    summarise(
        Summary(
            f"chat, {arguments.clients} customers' sockets: send to ack",
            f"p50 {to_ack.p50:.1f} ms, p99 {to_ack.p99:.1f} ms",
            f"echo server p50 {echo.p50:.2f} ms",
            to_ack.p50 / echo.p50,
            "none set",
            None,
        )
    )
    unanswered = hub_timings.unanswered + echo_timings.unanswered
    print(
        f"sent {len(hub_timings.sent)} to the hub, {len(echo_timings.sent)} to echo; "
        f"{unanswered} without an ack within {DRAIN_SECONDS:g} s"
    )


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_arguments(argv)))


if __name__ == "__main__":
    main()
