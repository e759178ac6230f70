"""The agent's socket between events: heartbeats, and the id a console resumes from."""

from __future__ import annotations

import pytest

from agent_ui import socket as agent_socket
from hub.context import Hub
from hub.events import Event
from tests.conftest import SignedIn
from tests.console_client import console_socket, next_of_type


async def test_an_idle_socket_beats_with_the_newest_id_even_of_an_event_it_withheld(
    hub: Hub, live_url: str, agent: SignedIn, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(agent_socket, "HEARTBEAT_SECONDS", 0.3)
    ws = await console_socket(live_url, agent.email)
    try:
        first = await next_of_type(ws, "heartbeat", seconds=5)
        # About a conversation that does not exist: no agent may see it, so nothing is sent.
        await hub.bus.publish([Event("message.received", {"conversation_id": 10**9})])
        withheld = hub.bus.last_id()
        second = await next_of_type(ws, "heartbeat", seconds=5)
    finally:
        await ws.close()

    assert first["last_event_id"] < withheld
    assert second["last_event_id"] == withheld
