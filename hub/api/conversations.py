"""`/api/conversations`: the console's lists, a thread, notes, assignment, closing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from hub.api.deps import current_agent, get_hub
from hub.api.schemas import AssignIn, NoteIn, ReplyIn, StatusIn
from hub.context import Hub
from hub.conversations import (
    conversation_view,
    do_add_note,
    do_assign,
    do_set_status,
    get_conversation,
    list_conversations,
    thread,
)
from hub.errors import InvalidInputError
from hub.models import Agent
from hub.replies import do_reply

router = APIRouter(prefix="/api/conversations", tags=["conversations"])


@router.get("")
async def conversations(
    status: str | None = Query(default=None, max_length=12),
    assignee: str | None = Query(default=None, description="an agent id, or `me`"),
    queue: str | None = Query(default=None, max_length=50),
    before: int | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Conversations, newest first, keyset-paged by id (`next` goes back as `before`)."""
    assignee_id = agent.id if assignee == "me" else _agent_id(assignee)
    async with hub.sessions() as session:
        rows, after = await list_conversations(session, limit, before, status, assignee_id, queue)
    return {"conversations": [conversation_view(c) for c in rows], "next": after}


def _agent_id(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        raise InvalidInputError("assignee is an agent id or `me`", field="assignee")
    return int(raw)


@router.get("/{conversation_id}")
async def read_conversation(
    conversation_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    async with hub.sessions() as session:
        conversation = await get_conversation(session, conversation_id)
        messages = await thread(session, conversation_id)
    return {
        **conversation_view(conversation),
        "thread": [
            {
                "id": m.id,
                "occurred_at": m.occurred_at,
                "direction": m.direction,
                "kind": m.kind,
                "subject": m.subject,
                "text": m.text,
                "sender": m.sender,
                "author_agent_id": m.author_agent_id,
            }
            for m in messages
        ],
    }


@router.post("/{conversation_id}/notes", status_code=201)
async def add_note(
    conversation_id: int,
    body: NoteIn,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    async with hub.work() as work:
        conversation = await get_conversation(work.session, conversation_id)
        note = await do_add_note(work, agent, conversation, body.text)
        return {"interaction_id": note.id, "conversation_id": conversation.id}


@router.post("/{conversation_id}/assign")
async def assign(
    conversation_id: int,
    body: AssignIn,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    async with hub.work() as work:
        conversation = await get_conversation(work.session, conversation_id)
        await do_assign(work, agent, conversation, body.assignee_id, body.queue)
        return conversation_view(conversation)


@router.post("/{conversation_id}/close")
async def close(
    conversation_id: int,
    body: StatusIn | None = None,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Close the conversation; `{"status": "open"}` reopens it."""
    async with hub.work() as work:
        conversation = await get_conversation(work.session, conversation_id)
        await do_set_status(work, agent, conversation, (body or StatusIn()).status)
        return conversation_view(conversation)


@router.post("/{conversation_id}/reply", status_code=202)
async def reply(
    conversation_id: int,
    body: ReplyIn,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Reply through the outbox; `status` is `queued`, or `blocked` with the `reasons`."""
    async with hub.work() as work:
        conversation = await get_conversation(work.session, conversation_id)
        result = await do_reply(
            hub, work, agent, conversation, body.text, body.channel, body.client_id
        )
    return {
        "interaction_id": result.interaction_id,
        "outbox_id": result.outbox_id,
        "status": result.status,
        "reasons": list(result.reasons),
    }
