"""Delivery reports: a hard bounce blocks the address, a soft one is counted, both are history."""

from __future__ import annotations

from sqlalchemy import select

from hub.bounces import DeliveryReport, accept_bounce
from hub.context import Hub
from hub.delivery import RecordingSender
from hub.dispatcher import Dispatcher
from hub.gate import Recipient, check
from hub.intake import accept_inbound
from hub.models import Block, Interaction, OutboxMessage, utcnow
from hub.outbox import Message, enqueue
from hub.values import Inbound


async def a_sent_reply(hub: Hub) -> OutboxMessage:
    result = await accept_inbound(
        hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender="anna@example.com",
            external_id="<q@x>",
            subject="Frage",
            text="?",
        ),
    )
    async with hub.work() as work:
        row = await enqueue(
            work,
            Message(
                idempotency_key="r1",
                channel="email",
                recipient="anna@example.com",
                purpose="service",
                text="Antwort",
                customer_id=result.customer_id,
                conversation_id=result.conversation_id,
            ),
            hub.policy,
        )
    await Dispatcher(hub, {"email": RecordingSender()}).dispatch_once()
    async with hub.sessions() as session:
        return await session.get(OutboxMessage, row.id)


def report(row: OutboxMessage, status: str, key: str = "<dsn-1@mx>", **extra) -> DeliveryReport:
    return DeliveryReport(
        external_id=key,
        recipient="anna@example.com",
        status=status,
        is_permanent=status.startswith("5"),
        received_at=utcnow(),
        original_message_id=row.provider_id,
        diagnostic="550 5.1.1 unknown",
        **extra,
    )


async def test_a_hard_bounce_blocks_the_address_and_the_next_message_is_blocked(hub: Hub):
    sent = await a_sent_reply(hub)

    result = await accept_bounce(hub, report(sent, "5.1.1"))

    assert (result.outbox_id, result.blocked) == (sent.id, True)
    async with hub.sessions() as session:
        block = (await session.scalars(select(Block))).one()
        decision = await check(
            session, Recipient(sent.customer_id, "email", "anna@example.com"), "service", hub.policy
        )
        history = list(
            await session.scalars(select(Interaction.text).where(Interaction.kind == "bounce"))
        )
    assert (block.kind, block.value, block.reason) == ("email", "anna@example.com", "hard_bounce")
    assert decision.reasons == ("block:hard_bounce",)
    assert history == ["permanent delivery failure to anna@example.com: 5.1.1 550 5.1.1 unknown"]


async def test_a_soft_bounce_is_counted_and_shown_but_blocks_nothing(hub: Hub):
    sent = await a_sent_reply(hub)

    result = await accept_bounce(hub, report(sent, "4.4.1"))

    assert result.blocked is False
    async with hub.sessions() as session:
        assert list(await session.scalars(select(Block))) == []
        kinds = list(
            await session.scalars(select(Interaction.meta).where(Interaction.kind == "bounce"))
        )
    assert kinds == [{"outbox_id": sent.id, "status": "4.4.1", "permanent": False}]
    assert 'omnihub_bounces_total{kind="soft"} 1.0' in hub.metrics.render().decode()


async def test_the_same_report_delivered_twice_is_taken_once(hub: Hub):
    sent = await a_sent_reply(hub)

    await accept_bounce(hub, report(sent, "5.1.1"))
    again = await accept_bounce(hub, report(sent, "5.1.1"))

    assert again.duplicate
    async with hub.sessions() as session:
        bounces = list(
            await session.scalars(select(Interaction).where(Interaction.kind == "bounce"))
        )
    assert len(bounces) == 1


async def test_a_report_naming_the_outbox_row_matches_without_a_provider_id(hub: Hub):
    sent = await a_sent_reply(hub)

    result = await accept_bounce(
        hub,
        DeliveryReport(
            external_id="<dsn-2@mx>",
            recipient="anna@example.com",
            status="5.2.2",
            is_permanent=True,
            received_at=utcnow(),
            outbox_id=sent.id,
        ),
    )

    assert result.outbox_id == sent.id
