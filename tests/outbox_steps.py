"""Outbox steps the tests share: Anna, who wrote in by e-mail, a message to her queued
as any part of the hub would, and what became of it."""

from __future__ import annotations

from sqlalchemy import select

from hub.context import Hub
from hub.intake import accept_inbound
from hub.models import Interaction, OutboxMessage
from hub.outbox import Message, enqueue
from hub.values import Inbound


async def anna(hub: Hub) -> int:
    result = await accept_inbound(
        hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender="anna@example.com",
            external_id="m1",
            subject="Frage",
            text="Hallo",
        ),
    )
    return result.customer_id


def message(
    key: str = "k1",
    recipient: str = "anna@example.com",
    customer_id: int | None = None,
    purpose: str = "service",
    channel: str = "email",
) -> Message:
    return Message(
        idempotency_key=key,
        channel=channel,
        recipient=recipient,
        purpose=purpose,
        subject="Antwort",
        text="Danke für Ihre Nachricht.",
        customer_id=customer_id,
    )


async def queue(
    hub: Hub,
    customer_id: int | None,
    key: str = "k1",
    purpose: str = "service",
    recipient: str = "anna@example.com",
    channel: str = "email",
) -> OutboxMessage:
    async with hub.work() as work:
        return await enqueue(
            work, message(key, recipient, customer_id, purpose, channel), hub.policy
        )


async def row(hub: Hub, row_id: int) -> OutboxMessage:
    async with hub.sessions() as session:
        return await session.get(OutboxMessage, row_id)


async def deliveries(hub: Hub, customer_id: int) -> list[str]:
    async with hub.sessions() as session:
        return list(
            await session.scalars(
                select(Interaction.text)
                .where(Interaction.customer_id == customer_id, Interaction.kind == "delivery")
                .order_by(Interaction.id)
            )
        )
