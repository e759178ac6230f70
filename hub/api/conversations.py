"""`/api/conversations`: the console's lists, a thread, notes, assignment, closing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from hub.agents import has_role
from hub.api.deps import current_agent, get_hub
from hub.api.schemas import AssignIn, NoteIn, ReplyCheckIn, ReplyIn, StatusIn
from hub.assignment import routing_view
from hub.audit import record
from hub.context import Hub, Work
from hub.conversations import (
    conversation_view,
    do_add_note,
    do_assign,
    do_set_status,
    get_conversation,
    list_conversations,
    thread,
)
from hub.errors import ConflictError, ForbiddenError, InvalidInputError
from hub.models import Agent, Conversation
from hub.replies import StaleDraftError, check_reply, do_reply

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
        rows, after = await list_conversations(
            session, limit, before, status, assignee_id, queue, seen_by=agent
        )
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
        routing = await routing_view(session, conversation_id)
    return {
        **conversation_view(conversation),
        "routing": routing,
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
    """Give the conversation to an agent (a transfer when it had one), or put it in a queue.

    An agent who is offline, full on the channel or does not serve the customer's
    tier is refused with 409 naming why, unless a supervisor sends `force`.
    """
    if body.force and not has_role(agent, "supervisor"):
        raise ForbiddenError("forcing an assignment needs the supervisor role", field="force")
    async with hub.work() as work:
        conversation = await get_conversation(work.session, conversation_id)
        previous = conversation.assignee_id
        forced = await _check_assignee(work, hub, conversation, agent, body)
        await do_assign(work, agent, conversation, body.assignee_id, body.queue)
        if previous is not None and previous != conversation.assignee_id:
            record(
                work.session,
                agent.id,
                "conversation.transferred",
                "conversation",
                conversation.id,
                from_agent_id=previous,
                to_agent_id=conversation.assignee_id,
                queue=conversation.queue,
            )
        await hub.router.record_manual(work, conversation, agent, forced)
    freed = previous if previous not in (None, body.assignee_id) else None
    await hub.router.settle(hub, conversation_id, freed)
    async with hub.sessions() as session:
        return conversation_view(await get_conversation(session, conversation_id))


async def _check_assignee(
    work: Work, hub: Hub, conversation: Conversation, actor: Agent, body: AssignIn
) -> str | None:
    """Why the assignee may not take it (None: they may); raises 409 unless forced."""
    if body.assignee_id is None:
        return None
    assignee = await work.session.get(Agent, body.assignee_id)
    if assignee is None:
        raise InvalidInputError(f"no agent {body.assignee_id}", field="assignee_id")
    why = await hub.router.why_not_assignable(work.session, conversation, assignee, actor)
    if why is None:
        return None
    if not body.force:
        raise ConflictError(
            f"cannot assign conversation {conversation.id}: {why}", field="assignee_id"
        )
    record(
        work.session,
        actor.id,
        "conversation.assignment_forced",
        "conversation",
        conversation.id,
        assignee_id=assignee.id,
        overrode=why,
    )
    return why


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
        view = conversation_view(conversation)
    if conversation.status == "closed" and conversation.assignee_id is not None:
        await hub.router.settle(hub, conversation_id, conversation.assignee_id)  # freed capacity
    return view


@router.post("/{conversation_id}/reply", status_code=202)
async def reply(
    conversation_id: int,
    body: ReplyIn,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> Any:
    """Reply through the outbox; `status` is `queued`, or `blocked` with the `reasons`.

    With `seen_interaction_id`, a 409 lists the `changes` that came since the draft began.
    """
    try:
        async with hub.work() as work:
            conversation = await get_conversation(work.session, conversation_id)
            result = await do_reply(
                hub,
                work,
                agent,
                conversation,
                body.text,
                body.channel,
                body.client_id,
                body.seen_interaction_id,
            )
    except StaleDraftError as stale:
        answer = {"detail": stale.message, "field": stale.field, "changes": stale.changes}
        return JSONResponse(jsonable_encoder(answer), status_code=409)
    return {
        "interaction_id": result.interaction_id,
        "outbox_id": result.outbox_id,
        "status": result.status,
        "reasons": list(result.reasons),
    }


@router.post("/{conversation_id}/reply/check")
async def check_reply_gate(
    conversation_id: int,
    body: ReplyCheckIn | None = None,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Whether a reply would pass the gate now, and if not why; nothing is sent."""
    async with hub.sessions() as session:
        conversation = await get_conversation(session, conversation_id)
        found = await check_reply(hub, session, conversation, (body or ReplyCheckIn()).channel)
    return {
        "channel": found.channel,
        "recipient": found.recipient,
        "allowed": not found.reasons,
        "reasons": list(found.reasons),
    }
