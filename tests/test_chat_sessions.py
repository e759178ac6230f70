"""A chat's session log: a reply sent again shown once, a resume from the last seq, the
registry's memory, an agent's reply surviving a restart of the hub, and the widget."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from channels.chat.sender import ChatSender
from channels.chat.sessions import ChatRegistry
from hub.context import Hub
from hub.values import Outbound
from tests.chat_peer import (
    WAIT,
    hello,
    receive,
    reply,
    say,
    serving,
    stored,
)
from tests.conftest import SignedIn


async def test_a_reply_sent_again_by_the_outbox_is_shown_once(hub: Hub):
    sender = ChatSender(ChatRegistry(hub=hub))
    outbound = Outbound(channel="chat", recipient="s1", text="Hallo", idempotency_key="reply:7")

    first = await sender.send(outbound)
    again = await sender.send(outbound)

    assert first == again
    assert first.provider_id == "chat:s1:1"
    replay = await sender.registry.attach("s1", Collecting(), None, 0)
    assert (replay.head, [f["text"] for f in replay.frames]) == (1, ["Hallo"])


class Collecting:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def offer(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)


async def test_a_resume_gets_the_frames_after_its_last_seq_and_live_ones_after_them(hub: Hub):
    registry = ChatRegistry(hub=hub)
    for n in range(1, 4):
        await registry.record_ack("s1", f"c{n}", {"type": "ack", "client_id": f"c{n}"})
    log_id = (await registry.attach("s1", Collecting(), None, 0)).log_id
    socket = Collecting()

    replay = await registry.attach("s1", socket, log_id, last_seq=1)
    await registry.record_agent_message("s1", "reply:1", {"type": "message", "text": "Hallo"})
    again = await registry.record_ack("s1", "c2", {"type": "ack", "client_id": "c2"})

    assert (replay.head, replay.gap, [f["seq"] for f in replay.frames]) == (3, False, [2, 3])
    assert [f["seq"] for f in socket.frames] == [4]  # the repeated ack is not pushed again
    assert again == ({"type": "ack", "client_id": "c2", "seq": 2}, False)


async def test_a_client_holding_seqs_of_another_log_gets_the_whole_log(hub: Hub):
    registry = ChatRegistry(hub=hub)
    await registry.record_ack("s1", "c1", {"type": "ack", "client_id": "c1"})

    replay = await registry.attach("s1", Collecting(), "a-log-from-before-the-upgrade", 7)
    same = await registry.attach("s1", Collecting(), replay.log_id, last_seq=9)

    assert replay.log_id != "a-log-from-before-the-upgrade"
    assert [f["seq"] for f in replay.frames] == [1]
    assert (same.log_id, [f["seq"] for f in same.frames]) == (replay.log_id, [1])


async def test_the_registry_keeps_only_the_sockets_of_sessions_in_memory(hub: Hub):
    registry = ChatRegistry(hub=hub)
    connected, gone = Collecting(), Collecting()
    await registry.attach("connected", connected, None, 0)
    await registry.attach("idle", gone, None, 0)
    registry.detach("idle", gone)

    await registry.record_agent_message(
        "connected", "reply:1", {"type": "message", "text": "Hallo"}
    )
    await registry.record_agent_message("idle", "reply:2", {"type": "message", "text": "Hallo"})

    assert registry.push("idle", {"type": "typing"}) == 0
    assert list(registry._live) == ["connected"]
    assert [f["seq"] for f in connected.frames] == [1]
    assert gone.frames == []


async def test_an_agent_reply_sent_while_the_customer_is_away_survives_a_restart_of_the_hub(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    async with serving(hub) as before:
        async with before.connect() as ws:
            welcome = await hello(ws)
            await say(ws, type="message", client_id="c1", text="Wo bleibt mein Paket?")
            ack = await receive(ws)
        conversation_id = (await stored(hub, welcome["session"], "c1")).conversation_id
        await reply(client, agent, conversation_id, "Es kommt morgen.")
        assert await before.dispatch() == 1  # logged while nobody is connected

    async with serving(hub) as after:  # a fresh registry and app: the restarted hub
        assert after.sender.registry is not before.sender.registry
        async with after.connect() as ws:
            resumed = await hello(
                ws, token=welcome["token"], log_id=welcome["log_id"], last_seq=ack["seq"]
            )
            message = await receive(ws)
            await say(ws, type="ping")
            pong = await receive_any(ws)
        assert await after.dispatch() == 0

    assert (resumed["log_id"], resumed["last_seq"]) == (welcome["log_id"], 2)
    assert (message["seq"], message["from"], message["text"]) == (2, "agent", "Es kommt morgen.")
    assert pong == {"type": "pong"}  # nothing came between: the reply arrived exactly once


async def receive_any(ws: ClientConnection) -> dict[str, Any]:
    """The next frame but the server's pings."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if frame["type"] != "ping":
            return frame


async def test_the_widget_is_served_as_javascript(client: httpx.AsyncClient):
    response = await client.get("/channels/chat/widget.js")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "WebSocket" in response.text and "sessionStorage" in response.text
