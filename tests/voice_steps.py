"""Voice steps the tests share: the hub configured for Twilio (the `voice` fixture), signed
call webhooks and status callbacks, the TwiML answered, and what the hub recorded of a call."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from hub.calls import find_call
from hub.context import Hub
from tests.conftest import SignedIn

TOKEN = "twilio-test-auth-token-0123456789"
PUBLIC_URL = "https://hub.example.com"
CALLS = "/channels/voice/twilio"
STATUS = "/channels/voice/twilio/status"
KNOWN_NUMBER = "+49 151 2345678"
UNKNOWN_NUMBER = "+49 170 9876543"


@pytest.fixture
def voice(hub: Hub) -> Hub:
    hub.settings = hub.settings.model_copy(
        update={"twilio_auth_token": TOKEN, "public_url": PUBLIC_URL}
    )
    return hub


def signature(path: str, params: dict[str, str], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(PUBLIC_URL + path, params)


async def post_signed(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> httpx.Response:
    headers = {"X-Twilio-Signature": signature(path, params)}
    return await client.post(path, data=params, headers=headers)


def incoming(call_sid: str, caller: str | None, **extra: str) -> dict[str, str]:
    params = {
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "CallSid": call_sid,
        "To": "+4930123456789",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        **extra,
    }
    if caller is not None:
        params["From"] = caller
    return params


async def call(client: httpx.AsyncClient, call_sid: str, caller: str | None) -> httpx.Response:
    return await post_signed(client, CALLS, incoming(call_sid, caller))


def twiml(response: httpx.Response) -> ElementTree.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    return ElementTree.fromstring(response.text)  # noqa: S314 - the hub's own TwiML


async def report(client: httpx.AsyncClient, call_sid: str, **fields: str) -> None:
    response = await post_signed(client, STATUS, {"CallSid": call_sid, **fields})
    assert response.status_code == 204, response.text


async def go_online(client: httpx.AsyncClient, agent: SignedIn, status: str = "online") -> None:
    response = await client.put(
        "/api/agents/me/presence", headers=agent.headers, json={"status": status}
    )
    assert response.status_code == 200, response.text


async def a_customer(client: httpx.AsyncClient, by: SignedIn, **fields: Any) -> int:
    body = {"name": "Anna Schmidt", "phones": [KNOWN_NUMBER], **fields}
    response = await client.post("/api/customers", headers=by.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def an_a_customer(client: httpx.AsyncClient, key_account: SignedIn, **fields: Any) -> int:
    return await a_customer(
        client, key_account, tier="A", key_account_agent_id=key_account.id, **fields
    )


def screen_pops(hub: Hub) -> list[dict[str, Any]]:
    return [event.data for event in hub.bus.replay(0) or [] if event.type == "call.ringing"]


async def count(hub: Hub, model: type[Any], *where: Any) -> int:
    async with hub.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def call_meta(hub: Hub, call_sid: str) -> dict[str, Any]:
    async with hub.sessions() as session:
        stored = await find_call(session, call_sid)
    assert stored is not None
    return stored.meta
