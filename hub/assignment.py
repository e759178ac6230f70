"""Who takes a conversation: the interface routing implements, and the core's default.

The default is deliberately simple (the `routing` package replaces it): an A
customer's conversation goes to their key-account agent (with priority while a
complaint is open), everyone else's with an open complaint to the service
queue first, the rest to a queue by tier. Each decision says why it was made.

Besides the decision on arrival, a router answers what the API needs of it:
whether an agent may be given a conversation by hand (`why_not_assignable`),
keeping its own record of such an assignment (`record_manual`), the work an
assignment sets moving once committed (`settle`), and presence changes
(`set_presence`). The default checks nothing and moves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import NotFoundError
from hub.models import Agent, Conversation, Customer, RoutingState

if TYPE_CHECKING:
    from hub.context import Hub, Work

COMPLAINT_PRIORITY = 10
TIER_QUEUES = {"A": "key_accounts", "B": "standard", "C": "pool"}


@dataclass(frozen=True, slots=True)
class Assignment:
    queue: str | None
    assignee_id: int | None
    priority: int
    reason: str
    sla_due_at: datetime | None = None


class Router(Protocol):
    async def assign(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        has_open_complaint: bool,
        *,
        first: bool = False,
    ) -> Assignment:
        """Who takes the conversation; `first`: it was opened in this transaction and was
        never routed, so there is no earlier decision to look up."""
        ...

    async def why_not_assignable(
        self, session: AsyncSession, conversation: Conversation, assignee: Agent, actor: Agent
    ) -> str | None:
        """Why `assignee` may not be given the conversation now, or None when they may."""

    async def record_manual(
        self, work: Work, conversation: Conversation, actor: Agent, forced: str | None
    ) -> None:
        """Keep the router's own record of an assignment made by hand."""

    async def settle(self, hub: Hub, conversation_id: int, released_agent_id: int | None) -> None:
        """After the commit of an assignment by hand: offer, and let the freed agent pull."""

    async def set_presence(self, hub: Hub, agent_id: int, status: str) -> None:
        """Stamp an agent's presence, emit `agent.presence_changed`, move what it concerns."""


class DefaultRouter:
    async def assign(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        has_open_complaint: bool,
        *,
        first: bool = False,
    ) -> Assignment:
        tier = customer.tier or "C"
        priority = COMPLAINT_PRIORITY if has_open_complaint else 0
        if tier == "A" and customer.key_account_agent_id is not None:
            # The key account keeps its own manager, who sees the complaint first.
            why = ", open complaint first" if has_open_complaint else ""
            return Assignment(
                TIER_QUEUES["A"],
                customer.key_account_agent_id,
                priority,
                f"tier A: to the key-account agent{why}",
            )
        if has_open_complaint:
            return Assignment("service", None, priority, "open complaint: service first")
        queue = TIER_QUEUES.get(tier, "pool")
        return Assignment(queue, None, 0, f"tier {tier}: {queue}")

    async def why_not_assignable(
        self, session: AsyncSession, conversation: Conversation, assignee: Agent, actor: Agent
    ) -> str | None:
        return None

    async def record_manual(
        self, work: Work, conversation: Conversation, actor: Agent, forced: str | None
    ) -> None:
        return None

    async def settle(self, hub: Hub, conversation_id: int, released_agent_id: int | None) -> None:
        return None

    async def set_presence(self, hub: Hub, agent_id: int, status: str) -> None:
        from hub.agents import stamp_presence  # hub.agents needs hub.context, which needs us

        async with hub.work() as work:
            agent = await work.session.get(Agent, agent_id)
            if agent is None:
                raise NotFoundError(f"no agent {agent_id}")
            stamp_presence(agent, status)
            work.emit("agent.presence_changed", agent_id=agent.id, status=agent.presence)


async def routing_view(session: AsyncSession, conversation_id: int) -> dict[str, Any] | None:
    """How routing decided on the conversation, step by step; None when it never did."""
    state = await session.get(RoutingState, conversation_id)
    if state is None:
        return None
    return {
        "rule": state.rule,
        "explanation": list(state.explanation or []),
        "waiting": state.waiting,
        "queue": state.queue,
        "priority": state.priority,
        "waiting_since": state.waiting_since if state.waiting else None,
        "next_step_at": state.widen_at,
        "sla_due_at": state.sla_due_at,
        "sla_breached_at": state.sla_breached_at,
    }
