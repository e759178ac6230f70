"""Routing in the running hub: push on arrival, pull on presence, hand assignment, the record."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ElementTree
from datetime import timedelta

import httpx
from sqlalchemy import select

from hub.context import Hub
from hub.intake import accept_inbound
from hub.models import AuditEntry, Complaint, Interaction, utcnow
from hub.values import Inbound
from routing.presence import rules_of
from routing.sla import run_timers
from tests.conftest import MakeAgent, SignedIn
from tests.routing_helpers import (
    conversation,
    customer,
    events,
    go,
    mail_from,
    routed_agent,
    routing_state,
    set_profile,
)
from tests.voice_steps import CALLS, PUBLIC_URL, TOKEN, incoming, post_signed


async def test_an_a_customers_mail_goes_to_their_key_account_and_the_conversation_says_why(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    kim = await routed_agent(client, make_agent, supervisor, "Kim")
    await customer(client, supervisor, "ceo@big.example", tier="A", key_account_agent_id=kim.id)

    conversation_id = await mail_from(hub, "ceo@big.example")

    shown = (await client.get(f"/api/conversations/{conversation_id}", headers=kim.headers)).json()
    assert (shown["assignee_id"], shown["queue"]) == (kim.id, "key_accounts")
    assert shown["routing_reason"] == "tier A: to the key-account agent Kim (0/10 email)"
    assert shown["routing"]["explanation"] == [
        "rule 'tier A': tier A, email",
        "to the key-account agent Kim (0/10 email)",
    ]
    assert shown["sla_due_at"] is not None and shown["routing"]["waiting"] is False
    [assigned] = events(hub, "conversation.assigned")
    assert (assigned["conversation_id"], assigned["assignee_id"]) == (conversation_id, kim.id)


async def test_a_conversation_nobody_can_take_waits_and_is_pulled_when_an_agent_comes_online(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    pia = await routed_agent(client, make_agent, supervisor, "Pia", "offline", teams=["pool"])

    conversation_id = await mail_from(hub, "someone@example.net")
    waiting = await routing_state(hub, conversation_id)
    await go(client, pia, "online")

    assert waiting.waiting and waiting.queue == "pool"
    taken = await conversation(hub, conversation_id)
    assert taken.assignee_id == pia.id
    assert taken.routing_reason == "tier C: pulled by Pia (came online)"
    assert [e["assignee_id"] for e in events(hub, "conversation.assigned")] == [None, pia.id]
    assert events(hub, "agent.presence_changed")[-1] == {"agent_id": pia.id, "status": "online"}


async def test_waiting_conversations_are_pulled_by_priority_then_age_up_to_capacity(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    pia = await routed_agent(
        client,
        make_agent,
        supervisor,
        "Pia",
        "offline",
        teams=["pool", "service"],
        capacity={"email": 2},
    )
    older = await mail_from(hub, "first@example.net")
    await mail_from(hub, "second@example.net")
    complaint_customer = await customer(client, supervisor, "angry@example.net", tier="C")
    async with hub.work() as work:
        work.session.add(Complaint(customer_id=complaint_customer, subject="Broken"))
    urgent = await mail_from(hub, "angry@example.net")

    await go(client, pia, "online")

    assert (await conversation(hub, urgent)).assignee_id == pia.id
    assert (await conversation(hub, older)).assignee_id == pia.id
    mine = await client.get("/api/conversations", params={"assignee": "me"}, headers=pia.headers)
    assert len(mine.json()["conversations"]) == 2


async def test_a_busy_key_account_is_waited_for_then_the_deputy_takes_it(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    dev = await routed_agent(client, make_agent, supervisor, "Dev")
    kim = await routed_agent(
        client, make_agent, supervisor, "Kim", capacity={"email": 1}, deputy_agent_id=dev.id
    )
    await customer(client, supervisor, "ceo@big.example", tier="A", key_account_agent_id=kim.id)
    await mail_from(hub, "ceo@big.example")  # Kim's one e-mail at a time

    second = await mail_from(hub, "ceo@big.example")
    held = await routing_state(hub, second)
    await run_timers(hub, rules_of(hub), held.widen_at - timedelta(seconds=1))
    still = await conversation(hub, second)
    await run_timers(hub, rules_of(hub), held.widen_at + timedelta(seconds=1))

    assert held.waiting and held.reserved_agent_id == kim.id
    assert held.explanation[-2:] == [
        "key-account agent Kim: full (1/1 email)",
        "waits 2m for the key-account agent before the deputy",
    ]
    assert still.assignee_id is None
    taken = await conversation(hub, second)
    assert (taken.assignee_id, taken.routing_reason) == (
        dev.id,
        "tier A: to the deputy Dev (0/10 email)",
    )


async def test_a_key_account_going_offline_stops_the_wait_for_them(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    dev = await routed_agent(client, make_agent, supervisor, "Dev")
    kim = await routed_agent(client, make_agent, supervisor, "Kim", "away", deputy_agent_id=dev.id)
    await customer(client, supervisor, "ceo@big.example", tier="A", key_account_agent_id=kim.id)
    conversation_id = await mail_from(hub, "ceo@big.example")

    await go(client, kim, "offline")
    await run_timers(hub, rules_of(hub), utcnow() + timedelta(seconds=1))

    assert (await conversation(hub, conversation_id)).assignee_id == dev.id


async def test_a_b_customer_with_an_open_complaint_goes_to_service_first(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    await routed_agent(client, make_agent, supervisor, "Bea", teams=["standard"])
    sam = await routed_agent(client, make_agent, supervisor, "Sam", teams=["service"])
    customer_id = await customer(client, supervisor, "b@example.net", tier="B")
    async with hub.work() as work:
        work.session.add(Complaint(customer_id=customer_id, subject="Late"))

    taken = await conversation(hub, await mail_from(hub, "b@example.net"))

    assert (taken.assignee_id, taken.queue, taken.priority) == (sam.id, "service", 10)


async def test_a_german_customer_goes_to_a_german_speaker(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    await routed_agent(client, make_agent, supervisor, "Cat", teams=["pool"])
    uwe = await routed_agent(
        client, make_agent, supervisor, "Uwe", teams=["pool"], languages=["de"]
    )
    await customer(client, supervisor, "kunde@example.de", language="de")

    taken = await conversation(hub, await mail_from(hub, "kunde@example.de"))

    assert taken.assignee_id == uwe.id


def a_call(call_sid: str, number: str) -> Inbound:
    return Inbound(
        channel="voice", sender_kind="phone", sender=number, external_id=call_sid, kind="call"
    )


async def assign(
    client: httpx.AsyncClient, by: SignedIn, conversation_id: int, **body: object
) -> httpx.Response:
    return await client.post(
        f"/api/conversations/{conversation_id}/assign", headers=by.headers, json=body
    )


async def test_assigning_to_an_agent_who_cannot_take_it_is_refused_naming_why(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    off = await routed_agent(client, make_agent, supervisor, "Olga", "offline")
    full = await routed_agent(client, make_agent, supervisor, "Fred", capacity={"email": 0})
    a_only = await routed_agent(client, make_agent, supervisor, "Ann", tiers=["A"])
    conversation_id = await mail_from(hub, "c@example.net")

    answers = [
        await assign(client, supervisor, conversation_id, assignee_id=who.id)
        for who in (off, full, a_only)
    ]

    assert [a.status_code for a in answers] == [409, 409, 409]
    assert [a.json()["detail"] for a in answers] == [
        f"cannot assign conversation {conversation_id}: Olga is offline",
        f"cannot assign conversation {conversation_id}: Fred is full: 0 of 0 email conversations",
        f"cannot assign conversation {conversation_id}: Ann does not serve tier C customers",
    ]
    assert (await conversation(hub, conversation_id)).assignee_id is None


async def test_a_supervisor_may_force_an_assignment_and_the_audit_keeps_what_it_overrode(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    off = await routed_agent(client, make_agent, supervisor, "Olga", "offline")
    conversation_id = await mail_from(hub, "c@example.net")

    by_agent = await assign(client, off, conversation_id, assignee_id=off.id, force=True)
    forced = await assign(client, supervisor, conversation_id, assignee_id=off.id, force=True)

    assert by_agent.status_code == 403
    assert forced.status_code == 200 and forced.json()["assignee_id"] == off.id
    async with hub.sessions() as session:
        audit = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    overrides = [e.details for e in audit if e.action == "conversation.assignment_forced"]
    assert overrides == [{"assignee_id": off.id, "overrode": "Olga is offline"}]
    shown = (await client.get(f"/api/conversations/{conversation_id}", headers=off.headers)).json()
    assert shown["routing"]["explanation"][-1] == (
        "assigned to Olga by Supervisor 1 (forced: Olga is offline)"
    )


async def test_an_agent_may_take_a_conversation_themselves_within_capacity(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    me = await routed_agent(client, make_agent, supervisor, "Max", "away", capacity={"email": 1})
    first = await mail_from(hub, "c@example.net")
    second = await mail_from(hub, "d@example.net")

    took = await assign(client, me, first, assignee_id=me.id)
    too_many = await assign(client, me, second, assignee_id=me.id)

    assert took.status_code == 200
    assert too_many.status_code == 409 and "full" in too_many.json()["detail"]


async def test_a_transfer_frees_capacity_and_the_agent_pulls_the_next_waiting_conversation(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    pia = await routed_agent(
        client, make_agent, supervisor, "Pia", teams=["pool"], capacity={"email": 1}
    )
    ole = await routed_agent(client, make_agent, supervisor, "Ole")
    first = await mail_from(hub, "c@example.net")
    second = await mail_from(hub, "d@example.net")
    assert (await conversation(hub, second)).assignee_id is None

    moved = await assign(client, pia, first, assignee_id=ole.id)

    assert moved.status_code == 200 and moved.json()["assignee_id"] == ole.id
    assert (await conversation(hub, second)).assignee_id == pia.id
    async with hub.sessions() as session:
        audit = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    transfers = [
        (e.actor_agent_id, e.details) for e in audit if e.action == "conversation.transferred"
    ]
    assert transfers == [
        (pia.id, {"from_agent_id": pia.id, "to_agent_id": ole.id, "queue": "pool"})
    ]


async def test_closing_a_conversation_lets_its_agent_pull_the_next(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    pia = await routed_agent(
        client, make_agent, supervisor, "Pia", teams=["pool"], capacity={"email": 1}
    )
    first = await mail_from(hub, "c@example.net")
    second = await mail_from(hub, "d@example.net")

    await client.post(f"/api/conversations/{first}/close", headers=pia.headers)

    assert (await conversation(hub, second)).assignee_id == pia.id


async def test_putting_a_conversation_back_in_a_queue_offers_it_to_a_free_member(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    pia = await routed_agent(client, make_agent, supervisor, "Pia", teams=["pool"])
    sam = await routed_agent(client, make_agent, supervisor, "Sam", teams=["service"])
    conversation_id = await mail_from(hub, "c@example.net")
    assert (await conversation(hub, conversation_id)).assignee_id == pia.id

    moved = await assign(client, pia, conversation_id, queue="service")

    assert (moved.json()["assignee_id"], moved.json()["queue"]) == (sam.id, "service")
    explanation = (await routing_state(hub, conversation_id)).explanation
    assert explanation[-2:] == [
        "put back in queue service by Pia",
        "offered to Sam, idle longest in service",
    ]


async def test_a_routing_profile_needs_a_supervisor_and_a_real_deputy(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    pia = await make_agent("agent", "Pia")

    by_agent = await client.put(
        f"/api/agents/{pia.id}/routing", headers=pia.headers, json={"teams": ["pool"]}
    )
    no_deputy = await client.put(
        f"/api/agents/{pia.id}/routing", headers=supervisor.headers, json={"deputy_agent_id": 999}
    )
    shown = await set_profile(
        client, supervisor, pia.id, teams=["pool"], tiers=["B", "C"], capacity={"chat": 2}
    )

    assert (by_agent.status_code, no_deputy.status_code) == (403, 422)
    assert (shown["teams"], shown["tiers"], shown["capacity"]) == (
        ["pool"],
        ["B", "C"],
        {"chat": 2},
    )


async def test_a_phone_conversation_loads_its_agent_only_while_the_call_goes_on(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    pia = await routed_agent(client, make_agent, supervisor, "Pia", teams=["pool"])
    first = await accept_inbound(hub, a_call("CA-1", "+491511111111"))
    second = await accept_inbound(hub, a_call("CA-2", "+491512222222"))
    async with hub.work() as work:
        call = await work.session.get(Interaction, first.interaction_id)
        call.meta = {**call.meta, "status": "completed", "ended_at": utcnow().isoformat()}
    third = await accept_inbound(hub, a_call("CA-3", "+491513333333"))

    owners = [
        (await conversation(hub, r.conversation_id)).assignee_id for r in (first, second, third)
    ]
    assert owners == [pia.id, None, pia.id]


async def test_calls_ring_the_idle_pool_agent_one_call_at_a_time(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    hub.settings = hub.settings.model_copy(
        update={"twilio_auth_token": TOKEN, "public_url": PUBLIC_URL}
    )
    pia = await routed_agent(client, make_agent, supervisor, "Pia", teams=["pool"])
    ole = await routed_agent(client, make_agent, supervisor, "Ole", teams=["pool"])

    first = await post_signed(client, CALLS, incoming("CA-r1", "+49 151 1111111"))
    second = await post_signed(client, CALLS, incoming("CA-r2", "+49 151 2222222"))

    dialled = [
        ElementTree.fromstring(answer.text).find("Dial").findtext("Client")  # noqa: S314
        for answer in (first, second)
    ]
    assert dialled == [f"agent-{pia.id}", f"agent-{ole.id}"]


async def test_only_the_agent_a_conversation_waits_for_can_cut_the_wait_short(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    ada = await routed_agent(client, make_agent, supervisor, "Ada", teams=["key_accounts"])
    dev = await routed_agent(client, make_agent, supervisor, "Dev", "away")
    kim = await routed_agent(
        client, make_agent, supervisor, "Kim", "offline", deputy_agent_id=dev.id
    )
    await customer(client, supervisor, "ceo@big.example", tier="A", key_account_agent_id=kim.id)
    conversation_id = await mail_from(hub, "ceo@big.example")
    waiting_for_dev = (await routing_state(hub, conversation_id)).widen_at

    await go(client, kim, "offline")  # Kim was skipped already: the wait is Dev's
    kept = (await routing_state(hub, conversation_id)).widen_at
    await go(client, dev, "offline")
    await run_timers(hub, rules_of(hub), utcnow() + timedelta(seconds=1))

    assert kept == waiting_for_dev
    assert (await conversation(hub, conversation_id)).assignee_id == ada.id


async def test_conversations_arriving_together_give_an_agent_no_more_than_their_capacity(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    pia = await routed_agent(
        client, make_agent, supervisor, "Pia", teams=["pool"], capacity={"email": 2}
    )

    # The first is stored alone, the other three together (hub.group_commit), routed
    # one after the other in one transaction.
    ids = await asyncio.gather(*(mail_from(hub, f"kunde{n}@example.net") for n in range(4)))

    assignees = [(await conversation(hub, each)).assignee_id for each in ids]
    assert assignees.count(pia.id) == 2
    assert [(await routing_state(hub, each)).waiting for each in ids].count(True) == 2
