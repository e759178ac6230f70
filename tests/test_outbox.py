"""The outbox and its dispatcher: once per key, the gate asked again, every outcome recorded."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

import hub.dispatcher as hub_dispatcher
from hub.app import create_app
from hub.blocks import do_add_block
from hub.context import Hub
from hub.delivery import (
    PermanentDeliveryError,
    Receipt,
    RecipientRefusedError,
    RecordingSender,
    TransientDeliveryError,
    UnknownDeliveryError,
)
from hub.dispatcher import Dispatcher
from hub.intake import accept_inbound
from hub.models import Block, Consent, Interaction, OutboxMessage, utcnow
from hub.outbox import Message, do_record_provider_status, enqueue, enqueue_many
from hub.values import Inbound, Outbound


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


async def test_a_queued_message_is_sent_with_the_providers_id_and_lands_in_history(hub: Hub):
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id)
    sender = RecordingSender()

    handled = await Dispatcher(hub, {"email": sender}).dispatch_once()

    sent = await row(hub, queued.id)
    assert handled == 1
    assert [(o.recipient, o.subject, o.idempotency_key) for o in sender.sent] == [
        ("anna@example.com", "Antwort", "k1")
    ]
    assert (sent.status, sent.provider_id, sent.attempts) == ("sent", "test-1", 1)
    assert sent.sent_at is not None
    assert await deliveries(hub, customer_id) == [
        "service message to anna@example.com sent (test-1)"
    ]


async def test_the_same_idempotency_key_queued_twice_is_sent_once(hub: Hub):
    customer_id = await anna(hub)
    first = await queue(hub, customer_id, key="reply:7")
    second = await queue(hub, customer_id, key="reply:7")
    sender = RecordingSender()
    dispatcher = Dispatcher(hub, {"email": sender})

    await dispatcher.dispatch_once()
    await dispatcher.dispatch_once()

    assert first.id == second.id
    assert len(sender.sent) == 1


async def test_messages_queued_together_are_each_gated_and_a_key_given_twice_is_queued_once(
    hub: Hub,
):
    customer_id = await anna(hub)
    earlier = await queue(hub, customer_id, key="earlier")
    async with hub.work() as work:
        await do_add_block(work, None, "email", "bounced@example.com", "hard_bounce", "DE")
    messages = [
        message("a", "anna@example.com", customer_id),
        message("b", "bounced@example.com", customer_id),
        message("a", "anna@example.com", customer_id),
        message("earlier", "anna@example.com", customer_id),
    ]

    async with hub.work() as work:
        rows = await enqueue_many(work, messages, hub.policy)

    assert [r.idempotency_key for r in rows] == ["a", "b", "a", "earlier"]
    assert [r.status for r in rows] == ["queued", "blocked", "queued", "queued"]
    assert rows[0].id == rows[2].id and rows[3].id == earlier.id
    assert rows[1].blocked_reasons == ["block:hard_bounce"]
    async with hub.sessions() as session:
        keys = list(await session.scalars(select(OutboxMessage.idempotency_key)))
    assert sorted(keys) == ["a", "b", "earlier"]
    assert await deliveries(hub, customer_id) == [
        "service message to bounced@example.com blocked: block:hard_bounce"
    ]


async def test_an_address_blocked_before_queueing_is_never_handed_to_a_sender(hub: Hub):
    customer_id = await anna(hub)
    async with hub.work() as work:
        await do_add_block(work, None, "email", "anna@example.com", "hard_bounce", "DE")
    queued = await queue(hub, customer_id)
    sender = RecordingSender()

    await Dispatcher(hub, {"email": sender}).dispatch_once()

    assert sender.sent == []
    assert queued.status == "blocked" and queued.blocked_reasons == ["block:hard_bounce"]
    assert await deliveries(hub, customer_id) == [
        "service message to anna@example.com blocked: block:hard_bounce"
    ]


async def test_a_block_arriving_between_queueing_and_dispatch_stops_the_message(hub: Hub):
    customer_id = await anna(hub)
    queued = await queue(hub, customer_id)
    async with hub.work() as work:
        await do_add_block(work, None, "customer", str(customer_id), "legal", "DE")
    sender = RecordingSender()

    await Dispatcher(hub, {"email": sender}).dispatch_once()

    stopped = await row(hub, queued.id)
    assert sender.sent == []
    assert (stopped.status, stopped.blocked_reasons) == ("blocked", ["block:legal"])


class BlockingWhileSending(RecordingSender):
    """While the first message is on its way, a block for the next recipient commits."""

    def __init__(self, hub: Hub, address: str, reason: str, scope: str = "all") -> None:
        super().__init__()
        self.hub, self.block = hub, (address, reason, scope)

    async def send(self, outbound: Outbound) -> Receipt:
        if not self.sent:
            address, reason, scope = self.block
            async with self.hub.work() as work:
                await do_add_block(work, None, "email", address, reason, "DE", scope)
        return await super().send(outbound)


async def test_a_block_committed_while_its_batch_goes_out_stops_the_messages_sent_later(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    # The first send takes longer than a gate answer stays fresh, as Twilio's do.
    monkeypatch.setattr(hub_dispatcher, "FRESH_SECONDS", 0.0)
    customer_id = await anna(hub)
    first = await queue(hub, customer_id, key="first", recipient="anna@example.com")
    second = await queue(hub, customer_id, key="second", recipient="anna.b@example.com")
    sender = BlockingWhileSending(hub, "anna.b@example.com", "hard_bounce")

    await Dispatcher(hub, {"email": sender}).dispatch_once()

    assert [o.idempotency_key for o in sender.sent] == ["first"]
    assert (await row(hub, first.id)).status == "sent"
    stopped = await row(hub, second.id)
    assert (stopped.status, stopped.blocked_reasons) == ("blocked", ["block:hard_bounce"])


async def test_an_unsubscribe_committed_while_a_batch_goes_out_does_not_stop_a_service_reply(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(hub_dispatcher, "FRESH_SECONDS", 0.0)
    customer_id = await anna(hub)
    await queue(hub, customer_id, key="first", recipient="anna@example.com")
    await queue(hub, customer_id, key="second", recipient="anna.b@example.com")
    # An unsubscribe blocks marketing only.
    sender = BlockingWhileSending(hub, "anna.b@example.com", "unsubscribe", scope="marketing")

    await Dispatcher(hub, {"email": sender}).dispatch_once()

    assert [o.idempotency_key for o in sender.sent] == ["first", "second"]


async def test_a_batch_that_goes_out_while_its_gate_answers_are_fresh_asks_the_gate_once(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    customer_id = await anna(hub)
    for n in range(4):
        await queue(hub, customer_id, key=f"k{n}", recipient=f"anna{n}@example.com")
    monkeypatch.setattr(hub_dispatcher, "FRESH_SECONDS", 60.0)
    asked: list[str] = []
    event.listen(
        hub.engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cursor, sql, *_rest: asked.append(sql) if "FROM blocks" in sql else None,
    )
    sender = RecordingSender()

    await Dispatcher(hub, {"email": sender}).dispatch_once()

    assert len(sender.sent) == 4
    assert len(asked) == 1


def counting_commits(hub: Hub) -> list[int]:
    """A list that grows by one at every commit on the hub's engine."""
    commits: list[int] = []
    event.listen(hub.engine.sync_engine, "commit", lambda _connection: commits.append(1))
    return commits


async def test_outcomes_of_messages_sent_close_together_are_recorded_in_one_transaction(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    customer_id = await anna(hub)
    queued = [await queue(hub, customer_id, key=f"k{n}") for n in range(5)]
    monkeypatch.setattr(hub_dispatcher, "RECORD_SECONDS", 60.0)
    dispatcher = Dispatcher(hub, {"email": RecordingSender()})
    commits = counting_commits(hub)

    await dispatcher.dispatch_once()

    # The claim, then one transaction for all five outcomes.
    assert len(commits) == 1 + 1
    assert [(await row(hub, q.id)).status for q in queued] == ["sent"] * 5
    assert len(await deliveries(hub, customer_id)) == 5


async def test_each_outcome_commits_by_itself_when_the_messages_go_out_slowly(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    customer_id = await anna(hub)
    for n in range(3):
        await queue(hub, customer_id, key=f"k{n}")
    monkeypatch.setattr(hub_dispatcher, "RECORD_SECONDS", 0.0)
    dispatcher = Dispatcher(hub, {"email": RecordingSender()})
    commits = counting_commits(hub)

    await dispatcher.dispatch_once()

    # The claim, then one transaction for each message's outcome.
    assert len(commits) == 1 + 3
    assert len(await deliveries(hub, customer_id)) == 3


async def test_a_refusal_is_committed_before_the_next_message_to_that_recipient_goes_out(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    customer_id = await anna(hub)
    refused = await queue(hub, customer_id, key="first", channel="sms", recipient="+491512345678")
    later = await queue(hub, customer_id, key="second", channel="sms", recipient="+491512345678")
    monkeypatch.setattr(hub_dispatcher, "RECORD_SECONDS", 60.0)  # else it would wait to record
    sender = RecordingSender()
    sender.fail_next(RecipientRefusedError("21610 unsubscribed recipient", "sms_stop"))

    await Dispatcher(hub, {"sms": sender}).dispatch_once()

    assert sender.sent == []
    assert (await row(hub, refused.id)).status == "failed"
    stopped = await row(hub, later.id)
    assert (stopped.status, stopped.blocked_reasons) == ("blocked", ["block:sms_stop"])


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
