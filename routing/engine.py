"""The hub's router: the `hub.assignment.Router` the app wires in, backed by the rules file.

Each method hands over to the module that does the work: the decision on
arrival (`routing.router`), the checks and record of assignment by hand
(`routing.manual`), presence (`routing.presence`). `build_router` reads the
rules file named by `OMNIHUB_ROUTING_RULES` (unset: the shipped default) and
fails with `RulesError` naming the file, line and problem.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from hub.assignment import Assignment, DefaultRouter
from hub.context import Hub, Work
from hub.models import Agent, Conversation, Customer
from hub.settings import Settings
from routing import manual, presence
from routing.router import route_conversation
from routing.rules import Rules, load_rules


class RulesRouter:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    async def assign(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        has_open_complaint: bool,
        *,
        first: bool = False,
    ) -> Assignment:
        decision, state = await route_conversation(
            session, self.rules, conversation, customer, has_open_complaint, first=first
        )
        return Assignment(
            decision.queue, decision.assignee_id, state.priority, decision.reason, state.sla_due_at
        )

    async def why_not_assignable(
        self, session: AsyncSession, conversation: Conversation, assignee: Agent, actor: Agent
    ) -> str | None:
        return await manual.why_not_assignable(session, self.rules, conversation, assignee, actor)

    async def record_manual(
        self, work: Work, conversation: Conversation, actor: Agent, forced: str | None
    ) -> None:
        await manual.record_manual(work, conversation, actor, forced)

    async def settle(self, hub: Hub, conversation_id: int, released_agent_id: int | None) -> None:
        await manual.settle(hub, conversation_id, released_agent_id)

    async def set_presence(self, hub: Hub, agent_id: int, status: str) -> None:
        await presence.set_presence(hub, agent_id, status)


def build_router(settings: Settings) -> RulesRouter:
    return RulesRouter(load_rules(settings.routing_rules))


def install_router(settings: Settings, hub: Hub) -> Rules:
    """Make the hub route by the rules file, unless it was handed a router of its own."""
    router = hub.router
    if not isinstance(router, RulesRouter):
        if not isinstance(router, DefaultRouter):
            return presence.rules_of(hub)  # a test's own router stays
        router = build_router(settings)
        hub.router = router
    return router.rules
