"""Which conversations an agent may see: by role, by assignment and by team.

    role                 sees
    supervisor, admin    every conversation
    agent                the conversations assigned to them, and those in the
                         queues of their teams; an agent in no team at all
                         works every queue (a small team that has not set up
                         teams yet)

A queue is named by the team that works it (`Agent.teams` holds queue names).
The console's lists, its fragments and its live events all ask here, so an
agent never learns of a conversation they may not open.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, or_, true

from hub.agents import has_role
from hub.models import Agent, Conversation


def sees_everything(agent: Agent) -> bool:
    return has_role(agent, "supervisor") or not agent.teams


def visible_to(agent: Agent) -> ColumnElement[bool]:
    """A WHERE clause over `Conversation` for what the agent may see."""
    if sees_everything(agent):
        return true()
    return or_(Conversation.assignee_id == agent.id, Conversation.queue.in_(list(agent.teams)))


def sees_customer(agent: Agent, customer_id: ColumnElement[int] | int) -> ColumnElement[bool]:
    """A WHERE clause: the agent may see some conversation of that customer."""
    if sees_everything(agent):
        return true()
    return exists().where(Conversation.customer_id == customer_id, visible_to(agent))


def may_see(agent: Agent, conversation: Conversation) -> bool:
    if sees_everything(agent) or conversation.assignee_id == agent.id:
        return True
    return conversation.queue is not None and conversation.queue in agent.teams


def queues_of(agent: Agent) -> list[str] | None:
    """The queues the agent works; None means every queue."""
    return None if sees_everything(agent) else list(agent.teams)
