"""Assignment and transfer by hand: the checks, the record, and what it frees.

An agent or supervisor may give a conversation to an agent, or put it back in
a queue. Giving it to an agent who is offline or away, full on the
conversation's channel, or who does not serve the customer's tier is refused
with a `ConflictError` (409) naming why, unless a supervisor forces it; an
agent taking a conversation themselves is evidently at work, so for them only
capacity and tier count. A conversation put back in a queue is offered to a
free member of that team at once; the agent it left frees capacity and pulls.
The audit log keeps who did it, and what a forced assignment overrode.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from hub.context import Hub, Work
from hub.models import Agent, AgentRouting, Conversation, Customer, RoutingState, utcnow
from routing.capacity import candidate, loads, read_candidates, stamp_assigned
from routing.presence import release, rules_of
from routing.queues import lock_routing
from routing.router import give
from routing.rules import Rules


async def why_not_assignable(
    session: AsyncSession, rules: Rules, conversation: Conversation, assignee: Agent, actor: Agent
) -> str | None:
    """Why `assignee` may not take the conversation now, or None when they may."""
    if conversation.assignee_id == assignee.id:
        return None
    if not assignee.is_active:
        return f"{assignee.name} is deactivated"
    await lock_routing(session)  # held to the commit: the load read stays true until then
    customer = await session.get(Customer, conversation.customer_id)
    tier = (customer.tier if customer else None) or "C"
    profile = await session.get(AgentRouting, assignee.id)
    counted = await loads(session, [assignee.id], conversation.channel)
    me = candidate(
        rules,
        assignee,
        profile,
        conversation.channel,
        counted.get((assignee.id, conversation.channel), 0),
    )
    if assignee.id != actor.id and me.presence != "online":
        return f"{assignee.name} is {me.presence}"
    if not me.serves(tier):
        return f"{assignee.name} does not serve tier {tier} customers"
    if me.load >= me.capacity:
        return (
            f"{assignee.name} is full: {me.load} of {me.capacity} "
            f"{conversation.channel} conversations"
        )
    return None


async def record_manual(
    work: Work, conversation: Conversation, actor: Agent, forced: str | None
) -> None:
    """Bring routing's record in line with an assignment made by hand (in its transaction)."""
    session = work.session
    await lock_routing(session)
    state = await session.get(RoutingState, conversation.id)
    now = utcnow()
    if state is None:
        customer = await session.get(Customer, conversation.customer_id)
        state = RoutingState(
            conversation_id=conversation.id,
            rule="manual",
            explanation=[],
            channel=conversation.channel,
            tier=(customer.tier if customer else None) or "C",
            priority=conversation.priority,
            waiting_since=now,
            sla_due_at=conversation.sla_due_at,
        )
        session.add(state)
    line = await _line(session, conversation, actor, forced)
    state.explanation = [*(state.explanation or []), line]
    state.queue = conversation.queue
    state.widen_at = None
    if conversation.assignee_id is not None:
        state.waiting = False
        await stamp_assigned(session, conversation.assignee_id, now)
    else:
        state.waiting = True
        state.waiting_since = now
        state.team_open = True
        state.reserved_agent_id = state.deputy_agent_id = None


async def _line(
    session: AsyncSession, conversation: Conversation, actor: Agent, forced: str | None
) -> str:
    if conversation.assignee_id is None:
        return f"put back in queue {conversation.queue} by {actor.name}"
    assignee = await session.get(Agent, conversation.assignee_id)
    name = assignee.name if assignee else f"agent {conversation.assignee_id}"
    overrode = f" (forced: {forced})" if forced else ""
    return f"assigned to {name} by {actor.name}{overrode}"


async def settle(hub: Hub, conversation_id: int, released_agent_id: int | None) -> None:
    """After the commit: offer a requeued conversation, and let the agent it left pull."""
    rules = rules_of(hub)
    async with hub.work() as work:
        await offer(work, rules, conversation_id)
    if released_agent_id is not None:
        await release(hub, released_agent_id)


async def offer(work: Work, rules: Rules, conversation_id: int) -> bool:
    """Give a waiting conversation to a free member of its queue's team, longest idle first."""
    session = work.session
    await lock_routing(session)
    state = await session.get(RoutingState, conversation_id)
    if state is None or not state.waiting or not state.team_open:
        return False
    present = await read_candidates(session, rules, state.channel)
    team = [c for c in present.values() if state.queue in c.teams]
    free = [c for c in team if c.why_not(state.tier, state.channel) is None]
    speakers = [c for c in team if c.presence == "online" and c.speaks(state.language)]
    if rules.language_match and state.language and speakers:
        free = [c for c in free if c.speaks(state.language)]
    if not free:
        return False
    chosen = min(free, key=lambda c: (c.idle_since, c.id))
    agent = await session.get(Agent, chosen.id)
    assert agent is not None
    given = await give(
        work, state, agent, f"offered to {agent.name}, idle longest in {state.queue}"
    )
    if given:
        await stamp_assigned(session, agent.id, utcnow())
    return given
