"""The chat tests' peer: the hub's app under uvicorn on a free loopback port, on the
test's own event loop, and the frames a customer's socket sends and reads."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from channels.chat.sender import ChatSender
from channels.chat.sessions import ChatConfig, ChatRegistry
from channels.chat.wiring import registry_of
from hub.app import create_app
from hub.context import Hub
from hub.dispatcher import Dispatcher
from hub.models import Interaction
from tests.conftest import SignedIn

# Timers long enough never to fire by accident; the heartbeat tests shorten them.
CALM = ChatConfig(ping_seconds=60, idle_seconds=60, hello_seconds=10)
WAIT = 5.0


@dataclass
class ChatPeer:
    hub: Hub
    sender: ChatSender
    url: str

    def connect(self) -> Any:
        return connect(self.url, open_timeout=WAIT, close_timeout=2, max_size=2**20)

    async def dispatch(self) -> int:
        return await Dispatcher(self.hub, {"chat": self.sender}).dispatch_once()


@asynccontextmanager
async def serving(hub: Hub, config: ChatConfig = CALM) -> AsyncIterator[ChatPeer]:
    """The hub's app under uvicorn on a free loopback port, on this event loop."""
    sender = ChatSender(ChatRegistry(config))
    app = create_app(hub.settings, hub, senders={"chat": sender})
    app.state.chat = registry_of({"chat": sender})  # the line proposed for create_app
    server = uvicorn.Server(
        uvicorn.Config(
            app, ws="websockets-sansio", lifespan="off", log_config=None, access_log=False
        )
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:  # noqa: ASYNC110 (uvicorn sets a flag, not an event)
                await asyncio.sleep(0.01)
        port = listener.getsockname()[1]
        yield ChatPeer(hub, sender, f"ws://127.0.0.1:{port}/channels/chat/ws")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT * 2)
        listener.close()


async def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next frame that is not a heartbeat."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if frame["type"] not in ("ping", "pong"):
            return frame


async def say(ws: ClientConnection, **frame: Any) -> None:
    await ws.send(json.dumps(frame))


async def hello(ws: ClientConnection, **fields: Any) -> dict[str, Any]:
    await say(ws, type="hello", **fields)
    welcome = await receive(ws)
    assert welcome["type"] == "welcome", welcome
    return welcome


async def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; the code it closed with."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(WAIT):
            while True:
                await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


async def stored(hub: Hub, session: str, client_id: str) -> Interaction | None:
    async with hub.sessions() as db:
        statement = select(Interaction).where(
            Interaction.channel == "chat", Interaction.external_id == f"{session}:{client_id}"
        )
        return (await db.scalars(statement)).first()


async def until_stored(hub: Hub, session: str, client_id: str) -> None:
    async with asyncio.timeout(WAIT):
        while await stored(hub, session, client_id) is None:  # noqa: ASYNC110 (a database)
            await asyncio.sleep(0.02)


async def chat_texts(hub: Hub, conversation_id: int) -> list[tuple[str, str]]:
    async with hub.sessions() as db:
        rows = await db.execute(
            select(Interaction.direction, Interaction.text)
            .where(Interaction.conversation_id == conversation_id, Interaction.kind == "message")
            .order_by(Interaction.id)
        )
        return [(direction, text) for direction, text in rows]


async def reply(client: httpx.AsyncClient, agent: SignedIn, conversation_id: int, text: str):
    answer = await client.post(
        f"/api/conversations/{conversation_id}/reply", headers=agent.headers, json={"text": text}
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"


def agent_texts(frames: dict[int, dict[str, Any]]) -> list[str]:
    return [frame["text"] for _, frame in sorted(frames.items()) if frame["type"] == "message"]
