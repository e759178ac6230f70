"""One way in: idempotent ingest, customer resolution, threading, complaints, events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from hub.context import Hub
from hub.errors import InvalidInputError
from hub.intake import accept_inbound
from hub.models import Complaint, Conversation, Customer, Interaction
from hub.values import Inbound


def sms(external_id: str, text: str = "Hallo", sender: str = "0151 2345678", **extra) -> Inbound:
    return Inbound(
        channel="sms",
        sender_kind="phone",
        sender=sender,
        external_id=external_id,
        text=text,
        **extra,
    )


def mail(external_id: str, sender: str = "anna@example.com", **extra) -> Inbound:
    return Inbound(
        channel="email",
        sender_kind="email",
        sender=sender,
        external_id=external_id,
        subject="Lieferung",
        text="Wo bleibt meine Bestellung?",
        **extra,
    )


async def count(hub: Hub, model: type) -> int:
    async with hub.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)))


def published(hub: Hub) -> list[str]:
    return [event.type for event in hub.bus.replay(0) or []]


async def test_a_contact_from_an_unknown_number_becomes_a_prospect_with_that_number(hub: Hub):
    result = await accept_inbound(hub, sms("SM1", sender="+49 151 2345678"))

    async with hub.sessions() as session:
        customer = await session.get(Customer, result.customer_id)
        await session.refresh(customer, ["identities"])
    assert customer.is_prospect
    assert [(i.kind, i.value) for i in customer.identities] == [("phone", "+491512345678")]


async def test_a_message_from_a_known_number_in_another_notation_lands_on_that_customer(hub: Hub):
    first = await accept_inbound(hub, sms("SM1", sender="0151 2345678"))
    second = await accept_inbound(hub, sms("SM2", sender="0049-151-2345678"))

    assert second.customer_id == first.customer_id
    assert await count(hub, Customer) == 1


async def test_ingesting_the_same_external_id_twice_stores_it_once_and_returns_the_first(hub: Hub):
    first = await accept_inbound(hub, sms("SM1", text="first"))
    again = await accept_inbound(hub, sms("SM1", text="a retry with other text"))

    assert again.duplicate and not first.duplicate
    assert (again.interaction_id, again.conversation_id, again.customer_id) == (
        first.interaction_id,
        first.conversation_id,
        first.customer_id,
    )
    assert await count(hub, Interaction) == 1
    assert published(hub).count("message.received") == 1


async def test_the_same_external_id_on_another_channel_is_another_message(hub: Hub):
    await accept_inbound(hub, sms("X1"))
    await accept_inbound(hub, mail("X1"))

    assert await count(hub, Interaction) == 2


async def test_concurrent_deliveries_of_one_message_store_it_once(hub: Hub):
    results = await asyncio.gather(*(accept_inbound(hub, sms("SM-race")) for _ in range(8)))

    assert len({r.interaction_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert await count(hub, Interaction) == 1
    assert await count(hub, Customer) == 1


async def test_a_second_message_threads_into_the_customers_open_conversation(hub: Hub):
    first = await accept_inbound(hub, sms("SM1"))
    second = await accept_inbound(hub, sms("SM2"))

    assert second.conversation_id == first.conversation_id
    assert await count(hub, Conversation) == 1


async def test_another_channel_opens_its_own_conversation_on_the_same_customer(hub: Hub):
    by_phone = await accept_inbound(
        hub,
        Inbound(channel="voice", sender_kind="phone", sender="+491512345678", external_id="CA1"),
    )
    by_sms = await accept_inbound(hub, sms("SM1"))

    assert by_sms.customer_id == by_phone.customer_id
    assert by_sms.conversation_id != by_phone.conversation_id


async def test_a_message_after_the_conversation_was_closed_opens_a_new_one(hub: Hub):
    first = await accept_inbound(hub, sms("SM1"))
    async with hub.work() as work:
        conversation = await work.session.get(Conversation, first.conversation_id)
        conversation.status = "closed"
    second = await accept_inbound(hub, sms("SM2"))

    assert second.conversation_id != first.conversation_id


async def test_a_thread_key_keeps_separate_threads_of_one_customer_apart(hub: Hub):
    one = await accept_inbound(hub, mail("m1", thread_key="<root-1@example.com>"))
    two = await accept_inbound(hub, mail("m2", thread_key="<root-2@example.com>"))
    reply = await accept_inbound(hub, mail("m3", thread_key="<root-1@example.com>"))

    assert one.conversation_id != two.conversation_id
    assert reply.conversation_id == one.conversation_id


async def test_a_thread_key_never_threads_into_another_customers_conversation(hub: Hub):
    anna = await accept_inbound(hub, mail("m1", thread_key="<root@example.com>"))
    forged = await accept_inbound(
        hub, mail("m2", sender="mallory@example.net", thread_key="<root@example.com>")
    )

    assert forged.customer_id != anna.customer_id
    assert forged.conversation_id != anna.conversation_id
    async with hub.sessions() as session:
        conversation = await session.get(Conversation, forged.conversation_id)
    assert conversation.customer_id == forged.customer_id


async def test_an_inbound_complaint_opens_a_complaint_linked_to_its_conversation(hub: Hub):
    result = await accept_inbound(hub, mail("m1", is_complaint=True))

    async with hub.sessions() as session:
        complaint = await session.get(Complaint, result.complaint_id)
        conversation = await session.get(Conversation, result.conversation_id)
    assert complaint.customer_id == result.customer_id and complaint.status == "open"
    assert complaint.subject == "Lieferung"
    assert conversation.queue == "service" and conversation.priority > 0
    assert "complaint.opened" in published(hub)


async def test_a_retried_complaint_returns_the_same_complaint_without_opening_another(hub: Hub):
    first = await accept_inbound(hub, mail("m1", is_complaint=True))
    again = await accept_inbound(hub, mail("m1", is_complaint=True))

    assert again.complaint_id == first.complaint_id
    assert await count(hub, Complaint) == 1


async def test_routing_records_why_it_chose_the_queue(hub: Hub):
    result = await accept_inbound(hub, sms("SM1"))

    async with hub.sessions() as session:
        conversation = await session.get(Conversation, result.conversation_id)
    assert conversation.queue == "pool"
    assert conversation.routing_reason == "tier C: pool"


async def test_events_are_published_after_the_commit_in_order(hub: Hub):
    await accept_inbound(hub, sms("SM1"))

    assert published(hub) == [
        "conversation.assigned",
        "customer.created",
        "conversation.created",
        "message.received",
    ]
    ids = [event.id for event in hub.bus.replay(0)]
    assert ids == sorted(ids)


async def test_a_failed_ingest_publishes_nothing_and_stores_nothing(hub: Hub):
    with pytest.raises(InvalidInputError):
        await accept_inbound(hub, sms("SM1", sender="not a number"))

    assert published(hub) == []
    assert await count(hub, Customer) == 0


async def test_a_backdated_contact_keeps_its_own_time(hub: Hub):
    then = datetime.now(UTC) - timedelta(days=30)
    result = await accept_inbound(hub, sms("SM-old", received_at=then))

    async with hub.sessions() as session:
        interaction = await session.get(Interaction, result.interaction_id)
    assert interaction.occurred_at == then


async def test_ingest_is_counted_by_channel_in_the_metrics(hub: Hub):
    await accept_inbound(hub, sms("SM1"))
    await accept_inbound(hub, sms("SM1"))

    text = hub.metrics.render().decode()
    assert 'omnihub_ingested_messages_total{channel="sms"} 1.0' in text
    assert 'omnihub_ingest_duplicates_total{channel="sms"} 1.0' in text


async def test_a_verified_hint_threads_into_the_customers_conversation_on_any_key(hub: Hub):
    first = await accept_inbound(hub, mail("m1", thread_key="<m1@example.com>"))
    answer = await accept_inbound(
        hub, mail("m2", thread_key="<m2@example.com>", conversation_hints=(first.conversation_id,))
    )

    assert answer.conversation_id == first.conversation_id


async def test_a_hint_to_another_customers_conversation_is_ignored(hub: Hub):
    anna = await accept_inbound(hub, mail("m1", thread_key="<m1@example.com>"))
    mallory = await accept_inbound(
        hub,
        mail(
            "m2",
            sender="mallory@example.net",
            thread_key="<m2@example.net>",
            conversation_hints=(anna.conversation_id,),
        ),
    )

    assert mallory.conversation_id != anna.conversation_id


async def test_a_reply_referencing_an_earlier_message_joins_its_conversation(hub: Hub):
    first = await accept_inbound(hub, mail("<m1@example.com>", thread_key="<m1@example.com>"))
    follow_up = await accept_inbound(
        hub,
        mail(
            "<m2@example.com>",
            thread_key="<m2@example.com>",
            references=("<unknown@example.com>", "<m1@example.com>"),
        ),
    )

    assert follow_up.conversation_id == first.conversation_id


async def test_an_automatic_message_is_stored_but_starts_no_conversation(hub: Hub):
    result = await accept_inbound(hub, mail("auto-1", automatic="auto-submitted: auto-replied"))

    assert result.conversation_id is None
    assert await count(hub, Conversation) == 0
    async with hub.sessions() as session:
        stored = await session.get(Interaction, result.interaction_id)
    assert stored.meta["automatic"] == "auto-submitted: auto-replied"
    assert "conversation.assigned" not in published(hub)


async def test_an_automatic_answer_in_an_open_thread_joins_it_without_rerouting(hub: Hub):
    first = await accept_inbound(hub, mail("<m1@example.com>", thread_key="<m1@example.com>"))
    auto = await accept_inbound(
        hub,
        mail(
            "<ooo@example.com>",
            thread_key="<ooo@example.com>",
            references=("<m1@example.com>",),
            automatic="x-autoreply",
        ),
    )

    assert auto.conversation_id == first.conversation_id
    assert published(hub).count("conversation.assigned") == 1


# Contacts arriving together are stored together (hub.group_commit): one transaction
# for all that queued while another was stored, each caller answered as if alone.


def counting_commits(hub: Hub) -> list[int]:
    commits: list[int] = []
    event.listen(hub.engine.sync_engine, "commit", lambda _connection: commits.append(1))
    return commits


async def test_contacts_arriving_together_are_stored_in_one_transaction_each_on_its_history(
    hub: Hub,
):
    commits = counting_commits(hub)
    numbers = [f"+4915100000{n:03d}" for n in range(12)]

    results = await asyncio.gather(
        *(
            accept_inbound(hub, sms(f"SM{n}", f"Hallo {n}", number))
            for n, number in enumerate(numbers)
        )
    )

    assert len(commits) == 2  # the first alone, then the eleven that queued meanwhile
    assert len({r.customer_id for r in results}) == 12
    async with hub.sessions() as session:
        for n, result in enumerate(results):
            interaction = await session.get(Interaction, result.interaction_id)
            assert interaction.text == f"Hallo {n}"
            assert interaction.customer_id == result.customer_id
            assert interaction.conversation_id == result.conversation_id
    assert published(hub).count("message.received") == 12
    assert published(hub).count("conversation.assigned") == 12


async def test_two_messages_of_a_new_number_stored_together_make_one_customer_and_conversation(
    hub: Hub,
):
    results = await asyncio.gather(
        accept_inbound(hub, sms("SM0", sender="+491510000000")),
        accept_inbound(hub, sms("SM1", sender="0151 2345678")),
        accept_inbound(hub, sms("SM2", sender="+49 151 2345678")),
    )

    assert results[1].customer_id == results[2].customer_id
    assert results[1].conversation_id == results[2].conversation_id
    assert await count(hub, Customer) == 2
    assert await count(hub, Conversation) == 2
    assert published(hub).count("customer.created") == 2


async def test_a_bad_contact_among_others_arriving_together_fails_alone(hub: Hub):
    outcomes = await asyncio.gather(
        accept_inbound(hub, sms("SM0", sender="+491510000000")),
        accept_inbound(hub, sms("SM1", sender="+491510000001")),
        accept_inbound(hub, sms("SM2", sender="not a number")),
        accept_inbound(hub, sms("SM3", sender="+491510000003")),
        return_exceptions=True,
    )

    assert isinstance(outcomes[2], InvalidInputError)
    assert all(not isinstance(outcome, Exception) for n, outcome in enumerate(outcomes) if n != 2)
    assert await count(hub, Interaction) == 3
    assert published(hub).count("message.received") == 3


async def test_a_contact_arriving_together_with_its_own_repeat_is_stored_once(hub: Hub):
    _alone, *repeats = await asyncio.gather(
        accept_inbound(hub, sms("SM0", sender="+491510000000")),
        accept_inbound(hub, sms("SM-twice")),
        accept_inbound(hub, sms("SM-twice")),
    )

    assert repeats[0].interaction_id == repeats[1].interaction_id
    assert sorted(r.duplicate for r in repeats) == [False, True]
    assert await count(hub, Interaction) == 2


async def test_routing_of_contacts_stored_together_sees_each_customers_open_complaint(hub: Hub):
    complaining = await accept_inbound(hub, mail("m0", is_complaint=True))
    await accept_inbound(hub, mail("m1", sender="ben@example.com"))

    _alone, *together = await asyncio.gather(
        accept_inbound(hub, sms("SM0", sender="+491510000000")),
        accept_inbound(hub, mail("m2", thread_key="<new-thread-anna@example.com>")),
        accept_inbound(hub, mail("m3", sender="ben@example.com", thread_key="<new-ben@x>")),
    )

    async with hub.sessions() as session:
        anna, ben = [await session.get(Conversation, r.conversation_id) for r in together]
    assert together[0].customer_id == complaining.customer_id
    assert (anna.queue, anna.priority) == ("service", 10)
    assert (ben.queue, ben.priority) == ("pool", 0)


async def test_a_reply_arriving_together_with_the_mail_it_answers_threads_into_its_conversation(
    hub: Hub,
):
    _alone, original, reply = await asyncio.gather(
        accept_inbound(hub, sms("SM0", sender="+491510000000")),
        accept_inbound(hub, mail("m1", thread_key="<m1@example.com>")),
        accept_inbound(hub, mail("m2", thread_key="<m2@example.com>", references=("m1",))),
    )

    assert reply.conversation_id == original.conversation_id
