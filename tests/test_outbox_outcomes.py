"""The outbox's outcomes: retries with backoff, permanent and unknown failures, a claimer
that died, the running dispatcher, the gate at send time, and the provider's reports."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from hub.app import create_app
from hub.context import Hub
from hub.delivery import (
    PermanentDeliveryError,
    RecipientRefusedError,
    RecordingSender,
    TransientDeliveryError,
    UnknownDeliveryError,
)
from hub.dispatcher import Dispatcher
from hub.intake import accept_inbound
from hub.models import Block, Consent, OutboxMessage, utcnow
from hub.outbox import Message, do_record_provider_status, enqueue
from hub.values import Inbound
from tests.outbox_steps import anna, deliveries, queue, row


async def test_a_temporary_failure_is_retried_with_growing_backoff(hub: Hub):
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id)
    sender = RecordingSender()
    sender.fail_next(TransientDeliveryError("421 try later"), TransientDeliveryError("timeout"))
    dispatcher = Dispatcher(hub, {"email": sender})

    await dispatcher.dispatch_once()
    after_first = await row(hub, queued.id)
    await make_due(hub, queued.id)
    await dispatcher.dispatch_once()
    after_second = await row(hub, queued.id)
    await make_due(hub, queued.id)
    await dispatcher.dispatch_once()

    assert after_first.status == "queued" and "421 try later" in after_first.last_error
    first_wait = after_first.next_attempt_at - utcnow()
    assert timedelta(seconds=20) < first_wait <= timedelta(seconds=30)
    assert after_second.next_attempt_at - utcnow() > timedelta(seconds=50)
    assert (await row(hub, queued.id)).status == "sent" and len(sender.sent) == 1


async def make_due(hub: Hub, row_id: int) -> None:
    async with hub.work() as work:
        await work.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def test_a_permanent_failure_fails_the_message_with_the_reason(hub: Hub):
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id)
    sender = RecordingSender()
    sender.fail_next(PermanentDeliveryError("550 no such user"))

    await Dispatcher(hub, {"email": sender}).dispatch_once()

    failed = await row(hub, queued.id)
    assert (failed.status, failed.last_error) == ("failed", "550 no such user")
    assert await deliveries(hub, customer_id) == [
        "service message to anna@example.com failed: 550 no such user"
    ]


async def test_a_sender_that_crashes_is_retried_and_the_dispatcher_keeps_running(hub: Hub):
    customer_id = await anna(hub)
    broken = await queue(hub, customer_id, key="a")
    fine = await queue(hub, customer_id, key="b")
    sender = RecordingSender()
    sender.fail_next(ZeroDivisionError("bug in a sender"))

    await Dispatcher(hub, {"email": sender}).dispatch_once()

    assert (await row(hub, broken.id)).status == "queued"
    assert "ZeroDivisionError" in (await row(hub, broken.id)).last_error
    assert (await row(hub, fine.id)).status == "sent"


async def test_a_message_fails_after_its_last_attempt(hub: Hub):
    hub.settings.outbox_max_attempts = 2
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id)
    sender = RecordingSender()
    sender.fail_next(TransientDeliveryError("busy"), TransientDeliveryError("still busy"))
    dispatcher = Dispatcher(hub, {"email": sender})

    await dispatcher.dispatch_once()
    await make_due(hub, queued.id)
    await dispatcher.dispatch_once()

    failed = await row(hub, queued.id)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert "still busy" in failed.last_error


async def test_a_channel_without_a_sender_waits_instead_of_losing_the_message(hub: Hub):
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id)

    await Dispatcher(hub, {}).dispatch_once()

    waiting = await row(hub, queued.id)
    assert waiting.status == "queued"
    assert "no sender is configured for channel email" in waiting.last_error


async def test_a_row_whose_claimer_died_is_reclaimed_after_the_lease(hub: Hub):
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id)
    async with hub.work() as work:
        await work.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == queued.id)
            .values(
                status="sending",
                claimed_by="dead:1",
                attempts=1,
                lease_until=utcnow() + timedelta(minutes=5),
            )
        )
    sender = RecordingSender()
    dispatcher = Dispatcher(hub, {"email": sender})

    before_expiry = await dispatcher.dispatch_once()
    async with hub.work() as work:
        await work.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == queued.id)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
    after_expiry = await dispatcher.dispatch_once()

    assert (before_expiry, after_expiry) == (0, 1)
    assert len(sender.sent) == 1
    assert (await row(hub, queued.id)).attempts == 2


async def test_the_dispatcher_loop_stops_when_told(hub: Hub):
    customer_id = await anna(hub)
    await queue(hub, customer_id)
    sender = RecordingSender()
    stop = asyncio.Event()
    dispatcher = Dispatcher(hub, {"email": sender}, poll_seconds=0.05)

    task = asyncio.create_task(dispatcher.run(stop))
    for _ in range(100):
        if sender.sent:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 2)

    assert len(sender.sent) == 1


async def test_the_running_app_dispatches_the_outbox_in_the_background(hub: Hub):
    customer_id = await anna(hub)
    sender = RecordingSender()
    app = create_app(hub.settings, Hub.create(hub.settings), senders={"email": sender})

    async with app.router.lifespan_context(app):
        await queue(hub, customer_id)
        for _ in range(200):
            if sender.sent:
                break
            await asyncio.sleep(0.02)

    assert [o.recipient for o in sender.sent] == ["anna@example.com"]


async def grant_marketing(hub: Hub, customer_id: int) -> None:
    async with hub.work() as work:
        work.session.add(
            Consent(
                customer_id=customer_id,
                channel="email",
                purpose="marketing",
                state="granted",
                evidence={"confirmed_at": "2026-11-01"},
            )
        )


async def complain(hub: Hub) -> None:
    """Anna's complaint, by e-mail."""
    await accept_inbound(
        hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender="anna@example.com",
            external_id="m2",
            subject="Beschwerde",
            text="Kaputt!",
            is_complaint=True,
        ),
    )


async def test_marketing_to_a_complaining_customer_is_blocked_while_the_service_reply_goes_out(
    hub: Hub,
):
    customer_id = await anna(hub)
    await grant_marketing(hub, customer_id)
    await complain(hub)
    offer = await queue(hub, customer_id, key="offer", purpose="marketing")
    sender = RecordingSender()
    async with hub.work() as work:
        unconfirmed = await enqueue(
            work,
            Message(
                idempotency_key="offer-sms",
                channel="sms",
                recipient="+491512345678",
                purpose="marketing",
                text="Angebot!",
                customer_id=customer_id,
            ),
            hub.policy,
        )
    reply = await queue(hub, customer_id, key="reply")

    await Dispatcher(hub, {"email": sender, "sms": sender}).dispatch_once()

    assert [o.idempotency_key for o in sender.sent] == ["reply"]
    assert (offer.status, offer.blocked_reasons) == ("blocked", ["open_complaint"])
    assert set(unconfirmed.blocked_reasons) == {"consent:missing", "open_complaint"}
    assert (await row(hub, reply.id)).status == "sent"


async def test_one_claimed_batch_is_gated_per_purpose_at_send_time(hub: Hub):
    customer_id = await anna(hub)
    await grant_marketing(hub, customer_id)
    offer = await queue(hub, customer_id, key="offer", purpose="marketing")
    reply = await queue(hub, customer_id, key="reply")
    # Both were allowed when queued; then the customer complains.
    await complain(hub)
    sender = RecordingSender()

    await Dispatcher(hub, {"email": sender}).dispatch_once()

    assert offer.status == reply.status == "queued"
    assert [o.idempotency_key for o in sender.sent] == ["reply"]
    blocked = await row(hub, offer.id)
    assert (blocked.status, blocked.blocked_reasons) == ("blocked", ["open_complaint"])


async def test_a_delivery_that_may_have_gone_out_is_marked_unknown_and_never_resent(hub: Hub):
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id)
    sender = RecordingSender()
    sender.fail_next(UnknownDeliveryError("connection lost after DATA"))
    dispatcher = Dispatcher(hub, {"email": sender})

    await dispatcher.dispatch_once()
    await make_due(hub, queued.id)
    await dispatcher.dispatch_once()

    unknown = await row(hub, queued.id)
    assert (unknown.status, unknown.last_error) == ("unknown", "connection lost after DATA")
    assert sender.sent == []


async def test_a_sender_cut_off_mid_send_leaves_the_message_unknown_not_resent(hub: Hub):
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id)

    class Hanging(RecordingSender):
        async def send(self, outbound):
            await asyncio.Event().wait()

    dispatcher = Dispatcher(hub, {"email": Hanging()})
    dispatcher.send_seconds = 0.1

    await dispatcher.dispatch_once()

    cut_off = await row(hub, queued.id)
    assert cut_off.status == "unknown"
    assert "did not finish in time" in cut_off.last_error


async def test_provider_reports_apply_only_forwards_however_they_arrive(hub: Hub):
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id)
    await Dispatcher(hub, {"email": RecordingSender()}).dispatch_once()
    provider_id = (await row(hub, queued.id)).provider_id

    for status in ("sent", "delivered", "sent", "queued", "delivered"):
        async with hub.work() as work:
            await do_record_provider_status(work, provider_id, status)

    done = await row(hub, queued.id)
    assert (done.status, done.provider_status) == ("delivered", "delivered")
    assert (await deliveries(hub, customer_id))[-1] == (
        "service message to anna@example.com delivered"
    )
    assert len(await deliveries(hub, customer_id)) == 2


async def test_an_undelivered_report_fails_the_message_with_the_providers_error(hub: Hub):
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id)
    await Dispatcher(hub, {"email": RecordingSender()}).dispatch_once()
    provider_id = (await row(hub, queued.id)).provider_id

    async with hub.work() as work:
        await do_record_provider_status(work, provider_id, "undelivered", "30003 unreachable")
        unknown = await do_record_provider_status(work, "SM-not-ours", "delivered")

    failed = await row(hub, queued.id)
    assert (failed.status, failed.last_error) == ("failed", "30003 unreachable")
    assert unknown is None


async def test_a_recipient_refused_by_the_provider_is_blocked_with_the_failure(hub: Hub):
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id, channel="sms", recipient="+491512345678")
    sender = RecordingSender()
    sender.fail_next(RecipientRefusedError("21610 unsubscribed recipient", "sms_stop"))

    await Dispatcher(hub, {"sms": sender}).dispatch_once()

    failed = await row(hub, queued.id)
    async with hub.sessions() as session:
        block = (await session.scalars(select(Block))).one()
    assert failed.status == "failed"
    assert (block.kind, block.value, block.reason) == ("phone", "+491512345678", "sms_stop")
