"""Agents' presence, and the work it sets moving.

`set_presence` is the one way presence changes (the API's
`PUT /api/agents/me/presence`, and the console when an agent's last socket
closes): it stamps the presence, emits `agent.presence_changed`, and then

- online: hands the agent the waiting conversations they may take (pull);
- away or offline: conversations held back waiting for this agent (their
  key accounts' and deputies') stop waiting for them: the rule's next step
  opens at the next timer tick.

`release` is the same pull for an agent who freed capacity.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.agents import stamp_presence
from hub.context import Hub
from hub.errors import NotFoundError
from hub.kpis.presence import log_presence
from hub.models import Agent, RoutingState, utcnow
from routing.queues import lock_routing
from routing.router import PULL_BATCH, pull
from routing.rules import Rules, load_rules

MAX_PULL_ROUNDS = 20


@cache
def _default_rules() -> Rules:
    return load_rules()


def rules_of(hub: Hub) -> Rules:
    """The hub's routing rules; the shipped default when routing is not wired in."""
    rules = getattr(hub.router, "rules", None)
    return rules if isinstance(rules, Rules) else _default_rules()


async def set_presence(hub: Hub, agent_id: int, status: str) -> None:
    """Stamp the agent's presence, tell the console, and move the work it concerns."""
    async with hub.work() as work:
        agent = await work.session.get(Agent, agent_id)
        if agent is None:
            raise NotFoundError(f"no agent {agent_id}")
        stamp_presence(agent, status)
        log_presence(work.session, agent)  # presence time on the dashboard (hub.kpis)
        work.emit("agent.presence_changed", agent_id=agent.id, status=agent.presence)
        if status != "online":
            await lock_routing(work.session)
            await _stop_waiting_for(work.session, rules_of(hub), agent_id)
    if status == "online":
        await release(hub, agent_id, "came online")


async def _stop_waiting_for(session: AsyncSession, rules: Rules, agent_id: int) -> None:
    """Conversations held back for this agent open their next step now."""
    held = or_(RoutingState.reserved_agent_id == agent_id, RoutingState.deputy_agent_id == agent_id)
    statement = select(RoutingState).where(
        RoutingState.waiting.is_(True), RoutingState.widen_at.is_not(None), held
    )
    steps = {rule.name: rule.steps for rule in rules.rules}
    now = utcnow()
    for state in await session.scalars(statement):
        rule_steps = steps.get(state.rule, ())
        target = rule_steps[state.step].to if state.step < len(rule_steps) else None
        holder = {"key_account": state.reserved_agent_id, "deputy": state.deputy_agent_id}
        if target is not None and holder.get(target) == agent_id:
            state.widen_at = now


async def release(hub: Hub, agent_id: int, why: str = "freed capacity") -> int:
    """Pull waiting conversations to the agent until they are full or none fit; how many."""
    rules, taken = rules_of(hub), 0
    for _round in range(MAX_PULL_ROUNDS):
        async with hub.work() as work:
            got = await pull(work, rules, agent_id, why)
        taken += got
        if got < PULL_BATCH:
            break
    return taken
