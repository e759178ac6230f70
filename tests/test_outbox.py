"""The outbox and its dispatcher: once per key, the gate asked again, outcomes recorded together."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

import hub.dispatcher as hub_dispatcher
from hub.blocks import do_add_block
from hub.context import Hub
from hub.delivery import (
    Receipt,
    RecipientRefusedError,
    RecordingSender,
)
from hub.dispatcher import Dispatcher
from hub.models import OutboxMessage
from hub.outbox import enqueue_many
from hub.values import Outbound
from tests.outbox_steps import anna, deliveries, message, queue, row


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
