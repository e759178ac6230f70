"""The console's socket (`WS /agent/ws`): it resumes from the last event id, tells a
console too far behind to reload, refuses another origin, carries presence, and tells an
agent nothing of conversations they may not see."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from agent_ui.socket import REPLAY_MOST
from hub.context import Hub
from hub.events import Event
from hub.models import Agent
from tests.conftest import MakeAgent, SignedIn
from tests.console_client import PASSWORD
from tests.console_steps import an_inquiry, set_teams


async def agent_socket(live_url: str, agent: SignedIn) -> tuple[str, dict[str, str]]:
    """The console socket's URL and the headers of the agent's signed-in page."""
    async with httpx.AsyncClient(base_url=live_url) as web:
        await web.post("/login", data={"email": agent.email, "password": PASSWORD})
        cookie = f"omnihub_session={web.cookies['omnihub_session']}"
    return live_url.replace("http://", "ws://") + "/agent/ws", {
        "Cookie": cookie,
        "Origin": live_url,
    }


async def test_the_agent_socket_resumes_from_the_last_event_id_it_saw(
    hub: Hub, live_url: str, agent: SignedIn
):
    ws_url, headers = await agent_socket(live_url, agent)

    async with websockets.connect(f"{ws_url}?last_event_id=0", additional_headers=headers) as ws:
        await an_inquiry(hub)
        first = await next_conversation_event(ws)
    _, second_conversation = await an_inquiry(hub, sender="bob@example.com", external_id="<b@x>")
    async with websockets.connect(
        f"{ws_url}?last_event_id={first['id']}", additional_headers=headers
    ) as ws:
        missed = await next_conversation_event(ws)

    assert missed["id"] > first["id"]
    assert missed["data"]["conversation_id"] == second_conversation
    assert set(missed["data"]) <= {
        "conversation_id",
        "customer_id",
        "channel",
        "queue",
        "assignee_id",
        "interaction_id",
        "direction",
    }


async def test_a_console_too_far_behind_is_told_to_reload_from_the_newest_event(
    hub: Hub, live_url: str, agent: SignedIn
):
    ws_url, headers = await agent_socket(live_url, agent)
    seen = hub.bus.last_id()
    typing = {"agent_id": agent.id, "conversation_id": 1, "hello": False}
    await hub.bus.publish([Event("agent.typing", typing) for _ in range(REPLAY_MOST + 1)])
    newest = hub.bus.last_id()

    resume = f"{ws_url}?last_event_id={seen}"
    async with websockets.connect(resume, additional_headers=headers) as ws:
        told = json.loads(await ws.recv())
        await hub.bus.publish([Event("agent.typing", typing)])
        then = json.loads(await ws.recv())

    assert told == {"type": "resync", "id": newest}
    assert then["type"] == "agent.typing" and then["id"] > newest


async def next_conversation_event(ws) -> dict:
    while True:
        for frame in frames(json.loads(await ws.recv())):
            if frame.get("type") == "conversation.created":
                return frame


def frames(message: dict | list) -> list[dict]:
    """One commit's events come as a list of frames, a lone event as one frame."""
    return message if isinstance(message, list) else [message]


async def test_a_socket_from_another_origin_or_without_a_session_is_refused(
    live_url: str, agent: SignedIn
):
    async with httpx.AsyncClient(base_url=live_url) as web:
        await web.post("/login", data={"email": agent.email, "password": PASSWORD})
        cookie = f"omnihub_session={web.cookies['omnihub_session']}"
    ws_url = live_url.replace("http://", "ws://") + "/agent/ws"

    for headers in ({"Cookie": cookie, "Origin": "http://evil.example"}, {"Origin": live_url}):
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(ws_url, additional_headers=headers):
                pass


async def presence(hub: Hub, agent: SignedIn) -> str:
    async with hub.sessions() as session:
        return (await session.get(Agent, agent.id)).presence


async def test_an_agent_goes_offline_when_their_last_socket_closes_and_back_on_return(
    hub: Hub, live_url: str, agent: SignedIn
):
    async with httpx.AsyncClient(base_url=live_url) as web:
        await web.post("/login", data={"email": agent.email, "password": PASSWORD})
        await web.put(
            "/api/agents/me/presence", json={"status": "online"}, headers={"Origin": live_url}
        )
        cookie = f"omnihub_session={web.cookies['omnihub_session']}"
    ws_url = live_url.replace("http://", "ws://") + "/agent/ws"
    headers = {"Cookie": cookie, "Origin": live_url}

    async with websockets.connect(ws_url, additional_headers=headers) as first:
        async with websockets.connect(ws_url, additional_headers=headers):
            pass
        await first.send(json.dumps({"type": "viewing", "conversation_id": 0}))
        still = await presence(hub, agent)  # one socket is still open
    offline = await until_presence(hub, agent, "offline")
    async with websockets.connect(ws_url, additional_headers=headers):
        back = await until_presence(hub, agent, "online")

    assert (still, offline, back) == ("online", "offline", "online")


async def until_presence(hub: Hub, agent: SignedIn, wanted: str) -> str:
    async with asyncio.timeout(10):
        while (found := await presence(hub, agent)) != wanted:  # noqa: ASYNC110 (a database)
            await asyncio.sleep(0.05)
    return found


async def test_the_socket_tells_an_agent_nothing_of_conversations_they_may_not_see(
    hub: Hub, live_url: str, make_agent: MakeAgent, supervisor: SignedIn
):
    teamed = await make_agent("agent", name="Teamed")
    await set_teams(hub, teamed, ["key_accounts"])
    ws_url, headers = await agent_socket(live_url, teamed)

    async with websockets.connect(ws_url, additional_headers=headers) as ws:
        _, hidden = await an_inquiry(hub)  # the pool: not Teamed's queue
        _, theirs = await an_inquiry(hub, sender="bob@example.com", external_id="<b@x>")
        async with httpx.AsyncClient(base_url=live_url, headers=supervisor.headers) as api:
            assigned = await api.post(
                f"/api/conversations/{theirs}/assign",
                json={"assignee_id": teamed.id, "force": True},  # Teamed is offline
            )
            assert assigned.status_code == 200, assigned.text
        seen = set()
        async with asyncio.timeout(10):
            while theirs not in seen:
                for frame in frames(json.loads(await ws.recv())):
                    seen.add(frame.get("data", {}).get("conversation_id"))

    assert hidden not in seen
