"""Routing against the database: push on arrival, pull when an agent frees up, and their record.

`route_conversation` is what the hub's router (`routing.engine`) runs: it
gathers the `Situation` (the customer's tier, key account and deputy, the
present agents with their load on the channel), lets `routing.decision`
decide, and keeps the decision in `routing_states`. A conversation nobody
could take waits there; `pull` hands waiting conversations to an agent who
comes online or frees capacity, in queue order, up to their capacity.

Every function here runs inside the caller's unit of work, after
`lock_routing`, so decisions never race (see `routing.queues`).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.context import Work
from hub.models import (
    Agent,
    AgentRouting,
    Complaint,
    Conversation,
    Customer,
    RoutingState,
    utcnow,
)
from routing.capacity import candidate, loads, read_candidates, stamp_assigned
from routing.decision import Candidate, Decision, Situation, decide, may_pull, primary_language
from routing.queues import find_waiting, lock_routing
from routing.rules import Rules

PULL_BATCH = 50


async def has_open_complaint(session: AsyncSession, customer_id: int) -> bool:
    statement = select(
        exists().where(Complaint.customer_id == customer_id, Complaint.status != "resolved")
    )
    return bool(await session.scalar(statement))


async def read_situation(
    session: AsyncSession,
    rules: Rules,
    conversation: Conversation,
    customer: Customer,
    complaint: bool,
    opened: int = 0,
    exclude: frozenset[int] = frozenset(),
) -> Situation:
    key_account_id = customer.key_account_agent_id
    profile = await session.get(AgentRouting, key_account_id) if key_account_id else None
    deputy_id = profile.deputy_agent_id if profile else None
    tier = customer.tier or "C"
    queue = rules.match(tier, complaint, conversation.channel).queue
    present = await read_candidates(
        session, rules, conversation.channel, (key_account_id, deputy_id), queue, reuse=True
    )
    return Situation(
        tier=tier,
        complaint=complaint,
        channel=conversation.channel,
        language=customer.language,
        key_account=present.get(key_account_id) if key_account_id else None,
        deputy=present.get(deputy_id) if deputy_id else None,
        members=tuple(present.values()),
        opened=opened,
        exclude=exclude,
    )


async def route_conversation(
    session: AsyncSession,
    rules: Rules,
    conversation: Conversation,
    customer: Customer,
    complaint: bool,
    opened: int = 0,
    exclude: frozenset[int] = frozenset(),
    now: datetime | None = None,
    first: bool = False,
) -> tuple[Decision, RoutingState]:
    """Decide who takes the conversation and keep the decision; the caller applies it.

    `first`: the conversation was opened in this transaction, so it has no state yet.
    Not asking for it also lets a batch's decisions be written together at the end,
    where a query in between would flush each on its own."""
    await lock_routing(session)
    now = now or utcnow()
    situation = await read_situation(
        session, rules, conversation, customer, complaint, opened, exclude
    )
    decision = decide(rules, situation, now)
    state = None if first else await session.get(RoutingState, conversation.id)
    if state is None:
        state = RoutingState(
            conversation_id=conversation.id,
            channel=conversation.channel,
            waiting_since=now,
            sla_due_at=sla_due(rules, situation.tier, conversation),
        )
        session.add(state)
    elif not state.waiting and decision.assignee_id is None:
        state.waiting_since = now
    _keep(state, decision, situation, now)
    if decision.assignee_id is not None:
        await stamp_assigned(session, decision.assignee_id, now)
    return decision, state


def sla_due(rules: Rules, tier: str, conversation: Conversation) -> datetime | None:
    target = rules.sla_for(tier, conversation.channel)
    return conversation.created_at + target if target is not None else None


def _keep(state: RoutingState, decision: Decision, situation: Situation, now: datetime) -> None:
    state.rule = decision.rule
    state.explanation = list(decision.explanation)
    state.waiting = decision.assignee_id is None
    state.queue = decision.queue
    state.priority = max(decision.priority, state.priority or 0)
    state.tier = situation.tier
    state.language = situation.language
    state.step = decision.step
    state.reserved_agent_id = decision.reserved_agent_id
    state.deputy_agent_id = decision.deputy_agent_id
    state.team_open = decision.team_open
    state.widen_at = decision.widen_at
    state.decided_at = now


def apply_decision(
    work: Work, conversation: Conversation, decision: Decision, state: RoutingState
) -> None:
    """Put a decision made outside intake on the conversation, and tell the console."""
    conversation.queue = decision.queue
    conversation.assignee_id = decision.assignee_id
    conversation.priority = state.priority
    conversation.routing_reason = decision.reason
    conversation.sla_due_at = state.sla_due_at
    emit_assigned(work, conversation)


def emit_assigned(work: Work, conversation: Conversation) -> None:
    work.emit(
        "conversation.assigned",
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        assignee_id=conversation.assignee_id,
        queue=conversation.queue,
        reason=conversation.routing_reason,
    )


async def online_speakers(session: AsyncSession) -> Counter[tuple[str, str]]:
    """How many online agents of each team speak each language."""
    statement = select(Agent.teams, Agent.language, Agent.languages).where(
        Agent.presence == "online", Agent.is_active.is_(True)
    )
    counts: Counter[tuple[str, str]] = Counter()
    for teams, language, languages in (await session.execute(statement)).all():
        spoken = {primary_language(lang) for lang in (language, *(languages or [])) if lang}
        counts.update((team, lang) for team in teams or () for lang in spoken)
    return counts


async def pull(work: Work, rules: Rules, agent_id: int, why: str) -> int:
    """Hand the agent waiting conversations they may take, up to capacity; how many."""
    session = work.session
    await lock_routing(session)
    row = (
        await session.execute(
            select(Agent, AgentRouting)
            .outerjoin(AgentRouting, AgentRouting.agent_id == Agent.id)
            .where(Agent.id == agent_id)
        )
    ).first()
    if row is None or not row[0].is_active or row[0].presence != "online":
        return 0
    agent, profile = row
    counted = Counter(await loads(session, [agent_id]))
    full_on = [
        channel
        for (_, channel), load in counted.items()
        if load >= candidate(rules, agent, profile, channel, load).capacity
    ]
    own = profile.capacity if profile else {}
    full_on += [channel for channel, cap in own.items() if not cap]
    tiers = profile.tiers if profile else ()
    waiting = await find_waiting(session, agent_id, agent.teams or (), PULL_BATCH, full_on, tiers)
    if not waiting:
        return 0
    speakers = await online_speakers(session)
    taken = 0
    for state in waiting:
        me = candidate(rules, agent, profile, state.channel, counted[(agent_id, state.channel)])
        if not _may_take(rules, me, state, speakers):
            continue
        if await give(work, state, agent, f"pulled by {agent.name} ({why})"):
            counted[(agent_id, state.channel)] += 1
            taken += 1
    if taken:
        await stamp_assigned(session, agent_id, utcnow())
    return taken


def _may_take(
    rules: Rules, me: Candidate, state: RoutingState, speakers: Counter[tuple[str, str]]
) -> bool:
    if me.load >= me.capacity:
        return False
    if me.id in (state.reserved_agent_id, state.deputy_agent_id):
        return me.serves(state.tier)  # a personal offer: the language was chosen with the person
    language = primary_language(state.language) if state.language else None
    count = speakers[(state.queue or "", language)] if language else 0
    return may_pull(rules, me, state.tier, language, count)


async def give(work: Work, state: RoutingState, agent: Agent, line: str) -> bool:
    conversation = await work.session.get(Conversation, state.conversation_id)
    state.waiting = False
    state.widen_at = None
    if conversation is None or conversation.status != "open" or conversation.assignee_id:
        return False  # closed or taken by hand meanwhile: no longer waiting
    state.explanation = [*state.explanation, line]
    conversation.assignee_id = agent.id
    conversation.queue = state.queue
    conversation.priority = state.priority
    conversation.routing_reason = f"{state.rule}: {line}"[:500]
    emit_assigned(work, conversation)
    return True


async def free_agents(session: AsyncSession, rules: Rules) -> list[int]:
    """Online agents something waits for, longest idle first.

    Something waits for an agent when a waiting conversation is held for them
    (key account, deputy) or open to a team they are in; whether they have
    capacity is found by trying.
    """
    waiting = RoutingState.waiting.is_(True)
    rows = (
        await session.execute(
            select(
                RoutingState.queue,
                RoutingState.team_open,
                RoutingState.reserved_agent_id,
                RoutingState.deputy_agent_id,
            )
            .where(waiting)
            .distinct()
        )
    ).all()
    queues = {row.queue for row in rows if row.team_open and row.queue}
    held = {row.reserved_agent_id for row in rows} | {row.deputy_agent_id for row in rows}
    present = await read_candidates(session, rules, "default")
    wanted = [
        c for c in present.values() if c.presence == "online" and (c.id in held or c.teams & queues)
    ]
    return [c.id for c in sorted(wanted, key=lambda c: (c.idle_since, c.id))]
