"""SMS steps the tests share: the hub's Twilio settings, a signed text in, Anna with her
number, and the rows the hub stored, queued and blocked."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from channels.sms.sending import TwilioSmsSender
from hub.context import Hub
from hub.dispatcher import Dispatcher
from hub.models import Block, Interaction, OutboxMessage
from hub.outbox import Message, enqueue
from hub.settings import Settings
from tests.conftest import SignedIn
from tests.peers.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    OUR_NUMBER,
    TwilioApi,
    incoming_sms,
    post_signed,
)

PUBLIC_URL = "https://hub.example.com"
WEBHOOK = "/channels/sms/twilio"
STATUS = "/channels/sms/twilio/status"
ANNA = "+491512345678"


def twilio_settings(settings: Settings, twilio_api: TwilioApi) -> Settings:
    return settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from_number": OUR_NUMBER,
            "twilio_api_base_url": twilio_api.url,
            "public_url": PUBLIC_URL,
        }
    )


async def text_in(
    client: httpx.AsyncClient, from_: str, body: str, **options: Any
) -> httpx.Response:
    return await post_signed(
        client, WEBHOOK, incoming_sms(from_, body, **options), public_url=PUBLIC_URL
    )


async def anna(client: httpx.AsyncClient, agent: SignedIn) -> int:
    answer = await client.post(
        "/api/customers", headers=agent.headers, json={"name": "Anna", "phones": ["0151 2345678"]}
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


async def rows_of(hub: Hub, model: Any, *where: Any) -> list[Any]:
    async with hub.sessions() as session:
        return list(await session.scalars(select(model).where(*where).order_by(model.id)))


async def sms_messages(hub: Hub) -> list[Interaction]:
    """The texts customers sent, as stored."""
    return await rows_of(
        hub,
        Interaction,
        Interaction.channel == "sms",
        Interaction.direction == "inbound",
        Interaction.kind == "message",
    )


async def dispatch(hub: Hub, sender: TwilioSmsSender) -> None:
    await Dispatcher(hub, {"sms": sender}).dispatch_once()


async def queue_service_sms(hub: Hub, key: str) -> OutboxMessage:
    """A service SMS to Anna's number, queued as any part of the hub would."""
    message = Message(
        idempotency_key=key,
        channel="sms",
        recipient=ANNA,
        purpose="service",
        text="Ihr Paket ist unterwegs.",
    )
    async with hub.work() as work:
        return await enqueue(work, message, hub.policy)


async def outbox_row(hub: Hub, row_id: int) -> OutboxMessage:
    (row,) = await rows_of(hub, OutboxMessage, OutboxMessage.id == row_id)
    return row


async def active_stop_blocks(hub: Hub, number: str = ANNA) -> list[Block]:
    return await rows_of(
        hub,
        Block,
        Block.kind == "phone",
        Block.value == number,
        Block.reason == "sms_stop",
        Block.lifted_at.is_(None),
    )
