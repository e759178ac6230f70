"""SLA timers: a first response due per tier and channel, breaches escalated once, restart-safe."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.context import Hub
from hub.events import Event
from hub.models import Conversation, utcnow
from routing.engine import RulesRouter, install_router
from routing.presence import rules_of
from routing.rules import load_rules
from routing.sla import run_timers, timer_job
from tests.conftest import MakeAgent, SignedIn
from tests.routing_helpers import (
    conversation,
    customer,
    events,
    mail_from,
    routed_agent,
    routing_state,
)

LATE = timedelta(hours=25)  # a C e-mail is due within 24 hours


async def next_event(subscription: Any, event_type: str) -> Event:
    while True:
        event = await subscription.get()
        if event.type == event_type:
            return event


async def escalate_by_the_timer_job(hub: Hub) -> Event:
    """Run the hub's real timer job until it reports a breach."""
    stop = asyncio.Event()
    async with hub.bus.subscribe() as subscription:
        job = asyncio.create_task(timer_job(hub, rules_of(hub), 0.05)(stop))
        try:
            return await asyncio.wait_for(next_event(subscription, "conversation.sla_breached"), 30)
        finally:
            stop.set()
            await job


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
async def test_a_breach_escalates_after_a_restart_as_it_would_have_without_one(
    hub: Hub,
    client: httpx.AsyncClient,
    make_agent: MakeAgent,
    supervisor: SignedIn,
    restart: bool,
):
    pia = await routed_agent(client, make_agent, supervisor, "Pia", teams=["pool"])
    arrived = utcnow() - LATE
    conversation_id = await mail_from(hub, "slow@example.net", received_at=arrived)
    assert (await conversation(hub, conversation_id)).assignee_id == pia.id
    max_ = await routed_agent(client, make_agent, supervisor, "Max", teams=["pool"])

    running = hub
    if restart:
        await hub.close()
        running = Hub.create(hub.settings)
        install_router(running.settings, running)
    try:
        breach = await escalate_by_the_timer_job(running)
        rerouted = await conversation(running, conversation_id)
        state = await routing_state(running, conversation_id)
    finally:
        if restart:
            await running.close()

    due = arrived + timedelta(hours=24)
    assert breach.data == {
        "conversation_id": conversation_id,
        "customer_id": rerouted.customer_id,
        "queue": "pool",
        "assignee_id": pia.id,
        "tier": "C",
        "due_at": due.isoformat(),
    }
    assert (rerouted.assignee_id, rerouted.priority) == (max_.id, 30)
    assert state.sla_breached_at is not None
    assert (
        state.explanation[0].startswith("first response due")
        and "re-routed" in (state.explanation[0])
    )


async def test_the_due_time_follows_the_tier_and_channel(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    kim = await routed_agent(client, make_agent, supervisor, "Kim")
    await customer(client, supervisor, "ceo@big.example", tier="A", key_account_agent_id=kim.id)
    arrived = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    a_mail = await conversation(hub, await mail_from(hub, "ceo@big.example", received_at=arrived))
    c_mail = await conversation(hub, await mail_from(hub, "c@example.net", received_at=arrived))

    assert a_mail.sla_due_at == arrived + timedelta(hours=1)
    assert c_mail.sla_due_at == arrived + timedelta(hours=24)


async def test_a_breach_is_escalated_once_and_an_answered_conversation_never(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent, supervisor: SignedIn
):
    await routed_agent(client, make_agent, supervisor, "Pia", teams=["pool"])
    late = await mail_from(hub, "late@example.net", received_at=utcnow() - LATE)
    answered = await mail_from(hub, "fine@example.net", received_at=utcnow() - LATE)
    async with hub.work() as work:
        (await work.session.get(Conversation, answered)).first_response_at = utcnow()

    first = await run_timers(hub, rules_of(hub))
    again = await run_timers(hub, rules_of(hub))

    assert (first.breached, again.breached) == (1, 0)
    assert [e["conversation_id"] for e in events(hub, "conversation.sla_breached")] == [late]
    assert (await routing_state(hub, answered)).sla_due_at is None  # no longer watched


async def test_with_notify_only_a_breach_leaves_the_assignee(
    hub: Hub,
    client: httpx.AsyncClient,
    make_agent: MakeAgent,
    supervisor: SignedIn,
    tmp_path: Path,
):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - name: all\n    queue: pool\n"
        "sla:\n  first_response:\n    C: {default: 1h}\n  on_breach: notify\n"
    )
    hub.router = RulesRouter(load_rules(rules))
    pia = await routed_agent(client, make_agent, supervisor, "Pia", teams=["pool"])
    await routed_agent(client, make_agent, supervisor, "Max", teams=["pool"])
    late = await mail_from(hub, "late@example.net", received_at=utcnow() - timedelta(hours=2))

    report = await run_timers(hub, rules_of(hub))

    assert report.breached == 1
    assert (await conversation(hub, late)).assignee_id == pia.id
