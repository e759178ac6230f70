"""The chat widget in a real Chromium: a shop page embeds it, a customer chats with an agent.

A shop, served on loopback by a server of its own (another origin; Chromium
lets only a local page reach a local socket), embeds
`/channels/chat/widget.js` from the hub, as a customer's site would. Agents
answer through the API, and the outbox's chat sender (the one whose registry
the socket route reads, `app.state.chat`) delivers the reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from channels.chat.sender import ChatSender
from hub.app import create_app
from hub.context import Hub
from hub.dispatcher import Dispatcher
from hub.models import Interaction, OutboxMessage
from tests.conftest import SignedIn
from tests.peers.browser import serving

SHOP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>Example shop</h1>
<script src="{url}/channels/chat/widget.js" data-lang="en" defer></script>
</body></html>"""
WAIT = 10.0


@dataclass
class LiveChat:
    hub: Hub
    app: FastAPI
    url: str
    shop: str

    async def dispatch(self) -> int:
        """One outbox pass through the chat sender the app's socket route shares."""
        sender = ChatSender(self.app.state.chat)
        return await Dispatcher(self.hub, {"chat": sender}).dispatch_once()

    def cut(self, session: str) -> int:
        """Close the server's side of every socket of the session; how many there were."""
        listeners = list(self.app.state.chat.log(session).listeners)
        for connection in listeners:
            connection.close(1012, "cut by the test")
        return len(listeners)


@pytest.fixture
async def live_chat(hub: Hub) -> AsyncIterator[LiveChat]:
    app = create_app(hub.settings, hub)
    async with serving(hub, app) as url:
        shop = FastAPI()
        shop.get("/", response_class=HTMLResponse)(lambda: SHOP_PAGE.format(url=url))
        async with serving(hub, shop) as shop_url:
            yield LiveChat(hub, app, url, shop_url)


async def open_shop(page: Any, shop: str) -> None:
    await page.goto(shop)
    await page.get_by_role("button", name="Chat with us").click()
    await page.get_by_role("button", name="Start chat").click()


async def type_and_send(page: Any, text: str) -> None:
    await page.get_by_role("textbox", name="Your message").fill(text)
    await page.get_by_role("button", name="Send").click()


async def bubbles(page: Any) -> list[tuple[str, str, str | None]]:
    """The widget's messages as (from, text, delivery mark of the customer's own)."""
    rows = await page.locator(".msg").evaluate_all(
        """nodes => nodes.map(node => [
            node.classList.contains('me') ? 'me' : 'agent',
            node.firstChild.textContent,
            node.querySelector('.meta') ? node.querySelector('.meta').textContent : null])"""
    )
    return [tuple(row) for row in rows]


async def until_bubbles(page: Any, expected: list[tuple[str, str, str | None]]) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while await bubbles(page) != expected:  # noqa: ASYNC110 (a browser's DOM)
                await asyncio.sleep(0.05)
    except TimeoutError:
        assert await bubbles(page) == expected  # shows what the widget has instead


async def until_status(page: Any, status: str) -> None:
    await page.locator(".status").filter(has_text=status).wait_for(timeout=WAIT * 1000)


async def chat_messages(hub: Hub) -> list[Interaction]:
    async with hub.sessions() as db:
        statement = (
            select(Interaction)
            .where(Interaction.channel == "chat", Interaction.kind == "message")
            .order_by(Interaction.id)
        )
        return list((await db.scalars(statement)).all())


async def until_stored(hub: Hub, count: int) -> list[Interaction]:
    async with asyncio.timeout(WAIT):
        while len(stored := await chat_messages(hub)) < count:  # noqa: ASYNC110 (a database)
            await asyncio.sleep(0.05)
    return stored


async def reply(client: httpx.AsyncClient, agent: SignedIn, conversation_id: int, text: str):
    answer = await client.post(
        f"/api/conversations/{conversation_id}/reply", headers=agent.headers, json={"text": text}
    )
    assert answer.status_code == 202, answer.text


async def test_a_customer_chats_in_the_widget_and_after_a_cut_both_sides_have_every_message_once(
    live_chat: LiveChat, page: Any, client: httpx.AsyncClient, agent: SignedIn
):
    await client.put("/api/agents/me/presence", headers=agent.headers, json={"status": "online"})
    await open_shop(page, live_chat.shop)
    await until_status(page, "Online")

    await type_and_send(page, "Hello, is anyone there?")
    await until_bubbles(page, [("me", "Hello, is anyone there?", "sent")])
    [first] = await until_stored(live_chat.hub, 1)
    session, conversation_id = first.sender, first.conversation_id
    await reply(client, agent, conversation_id, "Yes, how can I help?")
    assert await live_chat.dispatch() == 1
    await until_bubbles(
        page,
        [("me", "Hello, is anyone there?", "sent"), ("agent", "Yes, how can I help?", None)],
    )

    # The line drops: the browser goes offline and the hub's side of the socket closes.
    await page.context.set_offline(True)
    assert live_chat.cut(session) == 1
    await until_status(page, "Connecting")
    await reply(client, agent, conversation_id, "Are you still there?")  # the agent, meanwhile
    assert await live_chat.dispatch() == 1
    await type_and_send(page, "My parcel has not arrived.")  # the customer, meanwhile
    await type_and_send(page, "Order 4711.")
    await asyncio.sleep(0.5)  # a reconnect attempt or two fails while offline
    offline = await bubbles(page)
    await page.context.set_offline(False)

    expected = [
        ("me", "Hello, is anyone there?", "sent"),
        ("agent", "Yes, how can I help?", None),
        ("agent", "Are you still there?", None),
        ("me", "My parcel has not arrived.", "sent"),
        ("me", "Order 4711.", "sent"),
    ]
    await until_bubbles(page, expected)
    stored = await until_stored(live_chat.hub, 5)
    await asyncio.sleep(0.5)  # nothing more comes (no duplicate on either side)

    assert offline[-2:] == [
        ("me", "My parcel has not arrived.", "sending…"),
        ("me", "Order 4711.", "sending…"),
    ]
    assert await bubbles(page) == expected
    assert [(row.direction, row.text) for row in await chat_messages(live_chat.hub)] == [
        ("inbound", "Hello, is anyone there?"),
        ("outbound", "Yes, how can I help?"),
        ("outbound", "Are you still there?"),
        ("inbound", "My parcel has not arrived."),
        ("inbound", "Order 4711."),
    ]
    assert {row.conversation_id for row in stored} == {conversation_id}
    async with live_chat.hub.sessions() as db:
        outbox = (await db.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    assert [(row.status, row.provider_id) for row in outbox] == [
        ("sent", f"chat:{session}:2"),
        ("sent", f"chat:{session}:3"),
    ]
