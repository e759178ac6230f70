"""Console steps the tests share: an agent signed in with the cookie (the CSRF token), an
inquiry by e-mail, and an agent's teams set."""

from __future__ import annotations

import re

import httpx

from hub.context import Hub
from hub.intake import accept_inbound
from hub.models import Agent
from hub.values import Inbound
from tests.conftest import SignedIn
from tests.console_client import PASSWORD


async def sign_in(client: httpx.AsyncClient, agent: SignedIn) -> str:
    """Sign in with the cookie; the console's CSRF token."""
    await client.post("/login", data={"email": agent.email, "password": PASSWORD})
    page = await client.get("/console")
    assert page.status_code == 200
    return re.search(r'data-csrf="([^"]+)"', page.text).group(1)


async def an_inquiry(
    hub: Hub, sender: str = "anna@example.com", external_id: str = "<q-1@example.com>", **extra
) -> tuple[int, int]:
    result = await accept_inbound(
        hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender=sender,
            sender_name="Anna Schmidt",
            external_id=external_id,
            subject="Lieferzeit",
            text="Wann kommt meine Bestellung?",
            **extra,
        ),
    )
    return result.customer_id, result.conversation_id


async def set_teams(hub: Hub, agent: SignedIn, teams: list[str]) -> None:
    async with hub.work() as work:
        row = await work.session.get(Agent, agent.id)
        row.teams = teams
