"""Conversations: listing them for the console, their thread, and the agent's actions.

A conversation is open until an agent closes it; a new contact from the same
customer on a closed thread opens a new conversation. Lists are keyset-paged by
id, newest first.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import record
from hub.context import Work
from hub.errors import InvalidInputError, NotFoundError
from hub.models import Agent, Conversation, Interaction, utcnow
from hub.visibility import visible_to

STATUSES = ("open", "closed")


def conversation_view(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "customer_id": conversation.customer_id,
        "channel": conversation.channel,
        "status": conversation.status,
        "subject": conversation.subject,
        "assignee_id": conversation.assignee_id,
        "queue": conversation.queue,
        "priority": conversation.priority,
        "routing_reason": conversation.routing_reason,
        "sla_due_at": conversation.sla_due_at,
        "created_at": conversation.created_at,
        "last_message_at": conversation.last_message_at,
        "closed_at": conversation.closed_at,
    }


async def get_conversation(session: AsyncSession, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFoundError(f"no conversation {conversation_id}")
    return conversation


async def list_conversations(
    session: AsyncSession,
    limit: int,
    before: int | None = None,
    status: str | None = None,
    assignee_id: int | None = None,
    queue: str | None = None,
    seen_by: Agent | None = None,
) -> tuple[list[Conversation], int | None]:
    """A page of conversations, newest first; with `seen_by`, only those that agent may see."""
    if status is not None and status not in STATUSES:
        raise InvalidInputError(f"status must be one of {', '.join(STATUSES)}", field="status")
    statement = select(Conversation)
    if seen_by is not None:
        statement = statement.where(visible_to(seen_by))
    if status is not None:
        statement = statement.where(Conversation.status == status)
    if assignee_id is not None:
        statement = statement.where(Conversation.assignee_id == assignee_id)
    if queue is not None:
        statement = statement.where(Conversation.queue == queue)
    if before is not None:
        statement = statement.where(Conversation.id < before)
    rows = list(await session.scalars(statement.order_by(Conversation.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    return rows[:limit], rows[limit - 1].id if more else None


async def thread(session: AsyncSession, conversation_id: int) -> list[Interaction]:
    statement = (
        select(Interaction)
        .where(Interaction.conversation_id == conversation_id)
        .order_by(Interaction.occurred_at, Interaction.id)
    )
    return list(await session.scalars(statement))


async def do_add_note(
    work: Work, agent: Agent, conversation: Conversation, text: str
) -> Interaction:
    if not text.strip():
        raise InvalidInputError("a note needs text", field="text")
    note = Interaction(
        customer_id=conversation.customer_id,
        conversation_id=conversation.id,
        channel=conversation.channel,
        direction="internal",
        kind="note",
        text=text,
        author_agent_id=agent.id,
        sender=agent.email,
    )
    work.session.add(note)
    await work.session.flush()
    work.emit(
        "note.added",
        conversation_id=conversation.id,
        interaction_id=note.id,
        customer_id=conversation.customer_id,
    )
    return note


async def do_assign(
    work: Work,
    actor: Agent,
    conversation: Conversation,
    assignee_id: int | None,
    queue: str | None,
) -> Conversation:
    if assignee_id is not None and await work.session.get(Agent, assignee_id) is None:
        raise InvalidInputError(f"no agent {assignee_id}", field="assignee_id")
    conversation.assignee_id = assignee_id
    if queue is not None:
        conversation.queue = queue
    conversation.routing_reason = f"assigned by {actor.name}"
    record(
        work.session,
        actor.id,
        "conversation.assigned",
        "conversation",
        conversation.id,
        assignee_id=assignee_id,
        queue=conversation.queue,
    )
    work.emit(
        "conversation.assigned",
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        assignee_id=assignee_id,
        queue=conversation.queue,
        reason=conversation.routing_reason,
    )
    return conversation


async def do_set_status(
    work: Work, actor: Agent, conversation: Conversation, status: str
) -> Conversation:
    if status not in STATUSES:
        raise InvalidInputError(f"status must be one of {', '.join(STATUSES)}", field="status")
    conversation.status = status
    conversation.closed_at = utcnow() if status == "closed" else None
    work.session.add(
        Interaction(
            customer_id=conversation.customer_id,
            conversation_id=conversation.id,
            channel=conversation.channel,
            direction="internal",
            kind="status_change",
            text=f"{status} by {actor.name}",
            author_agent_id=actor.id,
            sender=actor.email,
        )
    )
    record(work.session, actor.id, f"conversation.{status}", "conversation", conversation.id)
    work.emit(
        f"conversation.{'closed' if status == 'closed' else 'reopened'}",
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
    )
    return conversation
