"""Live chat over a real socket: acked after commit, resumable, limited, answered by agents.

The hub's app runs under uvicorn on 127.0.0.1 as a task on the test's own
event loop (the `hub` fixture's engine is bound to that loop), and the tests
speak to it with the `websockets` client, frame by frame.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection

from channels.chat import handlers
from channels.chat.relay import TypingRelay
from hub.context import Hub
from hub.events import Event
from hub.intake import accept_inbound
from hub.models import Agent, Conversation, Interaction, OutboxMessage
from hub.values import Inbound
from tests.chat_peer import (
    CALM,
    WAIT,
    ChatPeer,
    agent_texts,
    chat_texts,
    close_code,
    hello,
    receive,
    reply,
    say,
    serving,
    stored,
    until_stored,
)
from tests.conftest import SignedIn


@pytest.fixture
async def chat(hub: Hub) -> AsyncIterator[ChatPeer]:
    async with serving(hub) as peer:
        yield peer


async def test_a_chat_message_is_acked_only_after_it_is_stored_on_the_customers_history(
    chat: ChatPeer, client: httpx.AsyncClient, agent: SignedIn
):
    async with chat.connect() as ws:
        welcome = await hello(ws)
        await say(ws, type="message", client_id="c1", text="Hallo, ist jemand da?")
        ack = await receive(ws)

        # At the ack the message is committed and its event published (after commit).
        interaction = await stored(chat.hub, welcome["session"], "c1")
        published = [e.data for e in chat.hub.bus.replay(0) or [] if e.type == "message.received"]

    assert ack == {"type": "ack", "client_id": "c1", "seq": 1}
    assert interaction is not None and interaction.text == "Hallo, ist jemand da?"
    assert interaction.sender == welcome["session"]
    assert [data["interaction_id"] for data in published] == [interaction.id]
    history = await client.get(
        f"/api/customers/{interaction.customer_id}/history", headers=agent.headers
    )
    assert [(e["channel"], e["text"]) for e in history.json()["entries"]] == [
        ("chat", "Hallo, ist jemand da?")
    ]


async def test_a_message_the_hub_cannot_store_is_not_acked_and_is_stored_once_resent(
    chat: ChatPeer, monkeypatch: pytest.MonkeyPatch
):
    real = handlers.accept_inbound
    failures = [ConnectionError("database unreachable")]

    async def failing_once(hub: Hub, inbound: Inbound):
        if failures:
            raise failures.pop()
        return await real(hub, inbound)

    monkeypatch.setattr(handlers, "accept_inbound", failing_once)
    async with chat.connect() as ws:
        welcome = await hello(ws)
        await say(ws, type="message", client_id="c1", text="Hallo")
        refused = await receive(ws)
        nothing = await stored(chat.hub, welcome["session"], "c1")
        await say(ws, type="message", client_id="c1", text="Hallo")
        ack = await receive(ws)

    assert refused["type"] == "error" and refused["code"] == "not_stored"
    assert nothing is None
    assert ack == {"type": "ack", "client_id": "c1", "seq": 1}
    assert await stored(chat.hub, welcome["session"], "c1") is not None


async def test_a_resent_message_is_stored_once_and_acked_with_its_first_seq(chat: ChatPeer):
    async with chat.connect() as ws:
        welcome = await hello(ws)
        await say(ws, type="message", client_id="c1", text="Erste")
        first = await receive(ws)
        await say(ws, type="message", client_id="c2", text="Zweite")
        await receive(ws)
        await say(ws, type="message", client_id="c1", text="Erste")
        again = await receive(ws)
    async with chat.connect() as ws:
        await hello(ws, token=welcome["token"], log_id=welcome["log_id"], last_seq=2)
        await say(ws, type="message", client_id="c1", text="Erste")
        after_reconnect = await receive(ws)

    assert first == again == after_reconnect == {"type": "ack", "client_id": "c1", "seq": 1}
    async with chat.hub.sessions() as db:
        count = await db.scalar(
            select(func.count()).where(Interaction.external_id == f"{welcome['session']}:c1")
        )
    assert count == 1


async def test_an_agent_reply_arrives_on_the_socket_with_the_next_seq(
    chat: ChatPeer, client: httpx.AsyncClient, agent: SignedIn
):
    async with chat.connect() as ws:
        welcome = await hello(ws)
        await say(ws, type="message", client_id="c1", text="Wann kommt mein Paket?")
        await receive(ws)
        conversation_id = (await stored(chat.hub, welcome["session"], "c1")).conversation_id
        await reply(client, agent, conversation_id, "Morgen früh.")
        assert await chat.dispatch() == 1
        message = await receive(ws)

    assert message["type"] == "message" and message["from"] == "agent"
    assert (message["seq"], message["text"]) == (2, "Morgen früh.")
    async with chat.hub.sessions() as db:
        row = (await db.scalars(select(OutboxMessage))).one()
    assert (row.status, row.provider_id) == ("sent", f"chat:{welcome['session']}:2")


async def test_after_a_cut_mid_conversation_and_a_resume_both_sides_have_every_message_once(
    chat: ChatPeer, client: httpx.AsyncClient, agent: SignedIn
):
    seen: dict[int, dict[str, Any]] = {}
    unacked: dict[str, str] = {}

    def take(frame: dict[str, Any]) -> None:
        """The client's rules: an ack settles its message; a seq is processed once."""
        if frame["type"] == "ack":
            unacked.pop(frame["client_id"], None)
        if frame["seq"] not in seen:
            assert frame["seq"] == max(seen, default=0) + 1, (frame, seen)
            seen[frame["seq"]] = frame

    async def send(ws: ClientConnection, client_id: str, text: str) -> None:
        unacked[client_id] = text
        await say(ws, type="message", client_id=client_id, text=text)

    async with chat.connect() as ws:
        welcome = await hello(ws)
        await send(ws, "m1", "eins")
        take(await receive(ws))
        conversation_id = (await stored(chat.hub, welcome["session"], "m1")).conversation_id
        await reply(client, agent, conversation_id, "r1")
        await chat.dispatch()
        take(await receive(ws))
        # In flight when the line drops: a reply pushed but not read, a message stored
        # whose ack is not read, and a message the client queued but never got out.
        await reply(client, agent, conversation_id, "r2")
        await chat.dispatch()
        await send(ws, "m2", "zwei")
        await until_stored(chat.hub, welcome["session"], "m2")
        unacked["m3"] = "drei"
        ws.transport.abort()
    await reply(client, agent, conversation_id, "r3")  # while the customer is away
    await chat.dispatch()

    resumed: list[dict[str, Any]] = []
    async with chat.connect() as ws:
        await hello(ws, token=welcome["token"], log_id=welcome["log_id"], last_seq=max(seen))
        for client_id, text in list(unacked.items()):
            await say(ws, type="message", client_id=client_id, text=text)
        while unacked or "r3" not in agent_texts(seen):
            resumed.append(await receive(ws))
            take(resumed[-1])

    # Replay r2, ack m2, r3; then m2's first ack again (same seq: ignored), m3's new ack.
    assert [frame["seq"] for frame in resumed] == [3, 4, 5, 4, 6]
    assert agent_texts(seen) == ["r1", "r2", "r3"]
    assert [f["client_id"] for _, f in sorted(seen.items()) if f["type"] == "ack"] == [
        "m1",
        "m2",
        "m3",
    ]
    stored_texts = await chat_texts(chat.hub, conversation_id)
    assert stored_texts == [
        ("inbound", "eins"),
        ("outbound", "r1"),
        ("outbound", "r2"),
        ("inbound", "zwei"),
        ("outbound", "r3"),
        ("inbound", "drei"),
    ]


async def test_a_forged_or_foreign_token_closes_the_socket_with_4401(chat: ChatPeer):
    async with chat.connect() as ws:
        welcome = await hello(ws)
    tampered = welcome["token"][:-2] + ("AA" if not welcome["token"].endswith("AA") else "BB")

    for token in ("forged", tampered):
        async with chat.connect() as ws:
            await say(ws, type="hello", token=token)
            assert await close_code(ws) == 4401


async def test_an_expired_token_closes_the_socket_with_4401(hub: Hub):
    async with serving(hub, replace(CALM, token_max_age=-1)) as peer:
        async with peer.connect() as ws:
            welcome = await hello(ws)
        async with peer.connect() as ws:
            await say(ws, type="hello", token=welcome["token"])
            assert await close_code(ws) == 4401


async def test_bad_frames_get_error_frames_and_this_and_other_sockets_carry_on(chat: ChatPeer):
    async with chat.connect() as ws, chat.connect() as other:
        await hello(ws)
        await hello(other)
        errors = []
        for raw in ("{not json", '["a list"]', '{"type": "shout"}', "x" * (17 * 1024)):
            await ws.send(raw)
            errors.append(await receive(ws))
        await ws.send(b"\x00binary")
        errors.append(await receive(ws))
        await say(ws, type="message", client_id="ok", text="")
        errors.append(await receive(ws))
        await say(ws, type="message", client_id="c1", text="Noch da")
        mine = await receive(ws)
        await say(other, type="message", client_id="c1", text="Ich auch")
        theirs = await receive(other)

    assert [(e["type"], e["code"]) for e in errors] == [
        ("error", "invalid_json"),
        ("error", "invalid_json"),
        ("error", "unknown_type"),
        ("error", "frame_too_large"),
        ("error", "binary_frame"),
        ("error", "invalid_frame"),
    ]
    assert mine == theirs == {"type": "ack", "client_id": "c1", "seq": 1}


async def test_a_frame_before_hello_is_refused_and_hello_still_works(chat: ChatPeer):
    async with chat.connect() as ws:
        await say(ws, type="message", client_id="c1", text="Hallo")
        refused = await receive(ws)
        welcome = await hello(ws)
        await say(ws, type="hello")
        again = await receive(ws)

    assert refused["code"] == "hello_required"
    assert welcome["session"]
    assert again["code"] == "unexpected_hello"


async def test_a_flooding_socket_gets_an_error_then_4429_and_others_carry_on(chat: ChatPeer):
    async with chat.connect() as calm, chat.connect() as flood:
        await hello(calm)
        await hello(flood)
        for _ in range(CALM.rate_frames + 5):
            await say(flood, type="typing")
        error = await receive(flood)
        code = await close_code(flood)
        await say(calm, type="message", client_id="c1", text="Alles gut?")
        ack = await receive(calm)

    assert (error["type"], error["code"]) == ("error", "rate_limited")
    assert code == 4429
    assert ack["type"] == "ack"


async def test_typing_is_relayed_both_ways_and_never_stored(chat: ChatPeer):
    stop = asyncio.Event()
    relay = asyncio.create_task(TypingRelay(chat.hub, chat.sender.registry).run(stop))
    try:
        async with chat.connect() as ws, chat.hub.bus.subscribe() as events:
            welcome = await hello(ws)
            await say(ws, type="typing")
            customer_typing = await asyncio.wait_for(events.get(), WAIT)
            agent_typing = Event(
                "typing.started",
                {"channel": "chat", "from": "agent", "chat_id": welcome["session"]},
            )
            await asyncio.sleep(0.05)  # the relay subscribes on its first turn
            await chat.hub.bus.publish([agent_typing])
            shown = await receive(ws)
    finally:
        stop.set()
        await asyncio.wait_for(relay, WAIT)

    assert customer_typing.type == "typing.started"
    assert customer_typing.data["chat_id"] == welcome["session"]
    assert customer_typing.data["from"] == "customer"
    assert shown == {"type": "typing", "from": "agent"}
    async with chat.hub.sessions() as db:
        assert await db.scalar(select(func.count()).select_from(Interaction)) == 0


async def test_without_an_agent_online_a_left_message_becomes_an_email_conversation(
    chat: ChatPeer,
):
    async with chat.connect() as ws:
        welcome = await hello(ws)
        await say(
            ws,
            type="leave_message",
            client_id="l1",
            email="Anna@Example.com",
            text="Bitte rufen Sie mich zurück.",
            name="Anna",
        )
        ack = await receive(ws)

    assert welcome["agents_online"] is False
    assert ack == {"type": "ack", "client_id": "l1", "seq": 1}
    async with chat.hub.sessions() as db:
        mail = (await db.scalars(select(Interaction).where(Interaction.channel == "email"))).one()
        conversation = await db.get(Conversation, mail.conversation_id)
    assert (mail.sender, mail.text) == ("anna@example.com", "Bitte rufen Sie mich zurück.")
    assert mail.external_id == f"chat:{welcome['session']}:l1"
    assert conversation.channel == "email"


async def test_welcome_says_agents_are_online_when_one_is(
    chat: ChatPeer, client: httpx.AsyncClient, agent: SignedIn
):
    await client.put("/api/agents/me/presence", headers=agent.headers, json={"status": "online"})
    async with chat.connect() as ws:
        welcome = await hello(ws)
    async with chat.hub.sessions() as db:
        assert (await db.get(Agent, agent.id)).presence == "online"

    assert welcome["agents_online"] is True


async def test_the_pre_chat_email_puts_the_chat_on_the_known_customer_and_replies_come_back(
    chat: ChatPeer, client: httpx.AsyncClient, agent: SignedIn
):
    known = await accept_inbound(
        chat.hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender="anna@example.com",
            external_id="<a1@example.com>",
            text="Frühere Mail",
        ),
    )
    async with chat.connect() as ws:
        welcome = await hello(ws, name="Anna", email="ANNA@example.com ")
        await say(ws, type="message", client_id="c1", text="Ich bin es, Anna")
        await receive(ws)
        message = await stored(chat.hub, welcome["session"], "c1")
        await reply(client, agent, message.conversation_id, "Hallo Anna!")
        await chat.dispatch()
        answer = await receive(ws)

    assert message.customer_id == known.customer_id
    assert message.meta["contact_verified"] is False
    assert answer["text"] == "Hallo Anna!"


async def test_an_invalid_pre_chat_email_is_reported_and_the_chat_goes_on(chat: ChatPeer):
    async with chat.connect() as ws:
        await say(ws, type="hello", email="not an address")
        refused = await receive(ws)
        welcome = await receive(ws)
        await say(ws, type="message", client_id="c1", text="Trotzdem hallo")
        ack = await receive(ws)

    assert refused["code"] == "invalid_contact"
    assert welcome["type"] == "welcome"
    assert ack["seq"] == 1


async def test_the_server_pings_and_closes_a_silent_socket_with_4408(hub: Hub):
    quick = replace(CALM, ping_seconds=0.1, idle_seconds=0.5, hello_seconds=0.5)
    async with serving(hub, quick) as peer:
        async with peer.connect() as ws:
            await hello(ws)
            ping = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            assert await close_code(ws) == 4408
        async with peer.connect() as ws:
            assert await close_code(ws) == 4408  # never said hello

    assert ping == {"type": "ping"}


async def test_a_socket_answering_pings_outlives_the_idle_timeout(hub: Hub):
    quick = replace(CALM, ping_seconds=0.1, idle_seconds=0.3)
    async with serving(hub, quick) as peer, peer.connect() as ws:
        await hello(ws)
        pings = 0
        while pings < 8:  # 0.8 s, well past idle_seconds
            frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            assert frame == {"type": "ping"}
            pings += 1
            await say(ws, type="pong")
        await say(ws, type="ping")
        answers = [json.loads(await asyncio.wait_for(ws.recv(), WAIT)) for _ in range(2)]

    assert {"type": "pong"} in answers
