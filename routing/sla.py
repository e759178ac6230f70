"""Timers: SLA breaches, the widening of a rule's steps, and queues meeting free agents.

Nothing is kept in memory: every tick reads what is due from the database
(`routing_states.sla_due_at`, `widen_at`, the waiting rows), so a restart, or
a second hub process, loses and doubles nothing. A breach is recorded once
(`sla_breached_at`, under the routing lock), then:

    first response due ──(no reply, still open, due passed)──> breached
        emits conversation.sla_breached (for the supervisors' console)
        on_breach: reroute ──> priority raised to breach_priority, offered
                              anew past every wait, not to the agent who let
                              it lapse (who may still pull it back later)

A conversation answered or closed before its due time stops being watched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from hub.audit import record
from hub.context import Hub, Work
from hub.models import Conversation, Customer, RoutingState, utcnow
from routing.presence import release, rules_of
from routing.queues import has_waiting, lock_routing
from routing.router import apply_decision, free_agents, has_open_complaint, route_conversation
from routing.rules import Rules

log = logging.getLogger(__name__)
BATCH = 200


@dataclass(frozen=True, slots=True)
class TimerReport:
    breached: int = 0
    widened: int = 0
    pulled: int = 0


async def run_timers(hub: Hub, rules: Rules, now: datetime | None = None) -> TimerReport:
    """One tick: escalate breaches, open the next steps that are due, fill free agents."""
    now = now or utcnow()
    async with hub.work() as work:
        breached = await escalate_breaches(work, rules, now)
    async with hub.work() as work:
        widened = await widen_due(work, rules, now)
    return TimerReport(breached, widened, await fill_free_agents(hub))


async def escalate_breaches(work: Work, rules: Rules, now: datetime) -> int:
    session = work.session
    await lock_routing(session)
    statement = (
        select(RoutingState, Conversation)
        .join(Conversation, Conversation.id == RoutingState.conversation_id)
        .where(RoutingState.sla_breached_at.is_(None), RoutingState.sla_due_at <= now)
        .order_by(RoutingState.sla_due_at)
        .limit(BATCH)
    )
    breached = 0
    for state, conversation in (await session.execute(statement)).all():
        if conversation.status != "open" or conversation.first_response_at is not None:
            state.sla_due_at = None  # met or moot: nothing left to watch
            continue
        await _breach(work, rules, state, conversation, now)
        breached += 1
    return breached


async def _breach(
    work: Work, rules: Rules, state: RoutingState, conversation: Conversation, now: datetime
) -> None:
    state.sla_breached_at = now
    due = state.sla_due_at.isoformat() if state.sla_due_at else None
    work.emit(
        "conversation.sla_breached",
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        queue=conversation.queue,
        assignee_id=conversation.assignee_id,
        tier=state.tier,
        due_at=due,
    )
    record(
        work.session, None, "conversation.sla_breached", "conversation", conversation.id, due_at=due
    )
    if rules.on_breach == "reroute":
        await _reroute(work, rules, state, conversation, now)


async def _reroute(
    work: Work, rules: Rules, state: RoutingState, conversation: Conversation, now: datetime
) -> None:
    customer = await work.session.get(Customer, conversation.customer_id)
    if customer is None:
        return
    lapsed = conversation.assignee_id
    state.priority = max(state.priority, rules.breach_priority)
    complaint = await has_open_complaint(work.session, customer.id)
    rule = rules.match(state.tier, complaint, conversation.channel)
    decision, state = await route_conversation(
        work.session,
        rules,
        conversation,
        customer,
        complaint,
        opened=len(rule.steps),  # every wait is over: anyone eligible may take it now
        exclude=frozenset({lapsed}) if lapsed else frozenset(),
        now=now,
    )
    state.explanation = [
        f"first response due {state.sla_due_at} was missed: re-routed",
        *state.explanation,
    ]
    apply_decision(work, conversation, decision, state)


async def widen_due(work: Work, rules: Rules, now: datetime) -> int:
    """Open the next step of every waiting conversation whose wait is over."""
    session = work.session
    await lock_routing(session)
    statement = (
        select(RoutingState)
        .where(RoutingState.waiting.is_(True), RoutingState.widen_at <= now)
        .order_by(RoutingState.widen_at)
        .limit(BATCH)
    )
    widened = 0
    for state in list(await session.scalars(statement)):
        conversation = await session.get(Conversation, state.conversation_id)
        customer = await session.get(Customer, conversation.customer_id) if conversation else None
        if conversation is None or customer is None or conversation.status != "open":
            state.waiting, state.widen_at = False, None
            continue
        complaint = await has_open_complaint(session, customer.id)
        decision, state = await route_conversation(
            session, rules, conversation, customer, complaint, opened=state.step + 1, now=now
        )
        apply_decision(work, conversation, decision, state)
        widened += 1
    return widened


async def fill_free_agents(hub: Hub) -> int:
    """Let every online agent, longest idle first, pull what waits for them."""
    async with hub.sessions() as session:
        if not await has_waiting(session):
            return 0
    async with hub.sessions() as session:
        agent_ids = await free_agents(session, rules_of(hub))
    pulled = 0
    for agent_id in agent_ids:
        pulled += await release(hub, agent_id, "was free")
    return pulled


def timer_job(hub: Hub, rules: Rules, tick: float) -> Callable[[asyncio.Event], Awaitable[None]]:
    """The background job `hub.app` runs: a tick every `tick` seconds until stopped."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await run_timers(hub, rules)
            except Exception:
                # A failing tick (a database restart, say) must not end the timers.
                log.exception("routing timers failed; trying again next tick")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick)

    return run
