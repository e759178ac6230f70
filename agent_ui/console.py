"""The console's fragments: list rows, a conversation with the customer card, the timeline.

The page (`agent_ui.pages`) is the frame; these endpoints fill it and refresh
its parts when the agent socket says something changed. Each one checks that
the agent may see what it shows (`hub.visibility`): a row the agent may not
see answers 204 (not listed), a conversation 404.

    GET  /console/lists                          both lists (after a resync)
    GET  /console/list/{section}?after=CURSOR    the next page of a list
    GET  /console/rows/{id}                      one row; 204 when it is not listed
    GET  /console/conversations/{id}             thread, composer and customer card
    GET  /console/conversations/{id}/thread?after=ID   entries newer than ID
    GET  /console/conversations/{id}/canned      canned responses, filled in
    POST /console/conversations/{id}/claim       starting a reply claims it
    GET  /console/customers/{id}/complaints      the open complaints box
    GET  /console/customers/{id}/history?before= a timeline page (scroll paging)
    GET  /console/calls/{interaction_id}/pop     the screen pop of a ringing call
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_ui import canned
from agent_ui.rendering import render
from agent_ui.worklist import SECTIONS, find_row, list_rows
from hub.api.deps import current_agent, get_hub
from hub.assignment import TIER_QUEUES
from hub.context import Hub
from hub.conversations import do_assign, get_conversation, thread
from hub.customers import get_card
from hub.errors import InvalidInputError, NotFoundError
from hub.history import get_history
from hub.models import Agent, Attachment, Conversation, Customer, Interaction
from hub.replies import reply_channel
from hub.visibility import may_see, sees_everything, visible_to

router = APIRouter(prefix="/console", include_in_schema=False)
BIRTHDAY_NOTICE_DAYS = 7
# Which channels a reply can take, by the kind of address the customer has.
REPLY_CHANNELS = (("email", "emails"), ("sms", "phones"), ("chat", "chat_ids"))


async def lists_context(session: AsyncSession, agent: Agent) -> dict[str, Any]:
    lists = {}
    for section in SECTIONS:
        rows, after = await list_rows(session, agent, section)
        lists[section] = {"rows": rows, "next": after}
    return {"lists": lists}


@router.get("/lists")
async def both_lists(
    request: Request, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> HTMLResponse:
    async with hub.sessions() as session:
        context = await lists_context(session, agent)
    return render(request, "console_lists.html", agent, **context)


@router.get("/list/{section}")
async def list_page(
    request: Request,
    section: str,
    after: str | None = Query(default=None, max_length=40),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> HTMLResponse:
    if section not in SECTIONS:
        raise NotFoundError(f"no list {section}")
    async with hub.sessions() as session:
        rows, later = await list_rows(session, agent, section, after)
    return render(request, "console_rows.html", agent, rows=rows, section=section, next=later)


@router.get("/rows/{conversation_id}")
async def one_row(
    request: Request,
    conversation_id: int,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> Response:
    async with hub.sessions() as session:
        row = await find_row(session, agent, conversation_id)
    if row is None:
        return Response(status_code=204)
    return render(request, "console_rows.html", agent, rows=[row], section=row.section, next=None)


async def visible_conversation(
    session: AsyncSession, agent: Agent, conversation_id: int
) -> Conversation:
    conversation = await get_conversation(session, conversation_id)
    if not may_see(agent, conversation):
        raise NotFoundError(f"no conversation {conversation_id}")
    return conversation


async def check_customer_visible(session: AsyncSession, agent: Agent, customer_id: int) -> None:
    """An agent sees a customer through a conversation of theirs the agent may see."""
    if sees_everything(agent):
        return
    statement = select(exists().where(Conversation.customer_id == customer_id, visible_to(agent)))
    if not await session.scalar(statement):
        raise NotFoundError(f"no customer {customer_id}")


async def thread_entries(
    session: AsyncSession, conversation_id: int, after: int | None = None
) -> list[dict[str, Any]]:
    entries = [e for e in await thread(session, conversation_id) if after is None or e.id > after]
    files = await _attachments(session, [entry.id for entry in entries])
    return [
        {
            "id": e.id,
            "occurred_at": e.occurred_at,
            "channel": e.channel,
            "direction": e.direction,
            "kind": e.kind,
            "subject": e.subject,
            "text": e.text,
            "has_html": bool(e.html),
            "sender": e.sender,
            "author_agent_id": e.author_agent_id,
            "status": (e.meta or {}).get("status"),
            "attachments": files.get(e.id, []),
        }
        for e in entries
    ]


async def _attachments(session: AsyncSession, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    if not ids:
        return {}
    statement = (
        select(Attachment.id, Attachment.interaction_id, Attachment.filename, Attachment.size)
        .where(Attachment.interaction_id.in_(ids))
        .order_by(Attachment.id)
    )
    found: dict[int, list[dict[str, Any]]] = {}
    for row in await session.execute(statement):
        found.setdefault(row.interaction_id, []).append(
            {"id": row.id, "filename": row.filename, "size": row.size}
        )
    return found


def latest_message_id(entries: list[dict[str, Any]]) -> int:
    ids = [e["id"] for e in entries if e["kind"] == "message" and e["direction"] != "internal"]
    return max(ids, default=0)


def birthday_in(birthday: date | None, today: date | None = None) -> int | None:
    """Days until the next birthday when it is within a week (0: today); else None."""
    if birthday is None:
        return None
    today = today or date.today()
    for year in (today.year, today.year + 1):
        try:
            next_one = birthday.replace(year=year)
        except ValueError:  # 29 February in a common year: the day after 28 February
            next_one = date(year, 3, 1)
        if next_one >= today:
            days = (next_one - today).days
            return days if days <= BIRTHDAY_NOTICE_DAYS else None
    return None


async def card_context(hub: Hub, session: AsyncSession, customer_id: int) -> dict[str, Any]:
    card = await get_card(session, customer_id, hub.settings.history_page_size)
    return {"card": card, "birthday_in": birthday_in(card["birthday"])}


async def _transfer_targets(session: AsyncSession) -> dict[str, Any]:
    agents = (
        await session.execute(
            select(Agent.id, Agent.name, Agent.presence, Agent.teams)
            .where(Agent.is_active.is_(True))
            .order_by(Agent.name)
        )
    ).all()
    queues = set(TIER_QUEUES.values()) | {"service"}
    for row in agents:
        queues |= set(row.teams or [])
    return {"agents": agents, "queues": sorted(queues)}


@router.get("/conversations/{conversation_id}")
async def conversation_pane(
    request: Request,
    conversation_id: int,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> HTMLResponse:
    async with hub.sessions() as session:
        conversation = await visible_conversation(session, agent, conversation_id)
        entries = await thread_entries(session, conversation.id)
        card = await card_context(hub, session, conversation.customer_id)
        targets = await _transfer_targets(session)
        assignee = await session.get(Agent, conversation.assignee_id or 0)
    channels = [ch for ch, field in REPLY_CHANNELS if card["card"][field]]
    try:
        default_channel = reply_channel(conversation.channel)
    except InvalidInputError:
        default_channel = channels[0] if channels else None
    return render(
        request,
        "console_conversation.html",
        agent,
        conversation=conversation,
        assignee=assignee,
        entries=entries,
        latest_id=latest_message_id(entries),
        reply_channels=channels,
        default_channel=default_channel,
        **card,
        **targets,
    )


@router.get("/conversations/{conversation_id}/thread")
async def thread_since(
    request: Request,
    conversation_id: int,
    after: int = Query(ge=0),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> HTMLResponse:
    async with hub.sessions() as session:
        conversation = await visible_conversation(session, agent, conversation_id)
        entries = await thread_entries(session, conversation.id, after)
    return render(request, "console_thread.html", agent, entries=entries)


@router.get("/conversations/{conversation_id}/canned")
async def canned_responses(
    conversation_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> list[dict[str, str]]:
    async with hub.sessions() as session:
        conversation = await visible_conversation(session, agent, conversation_id)
        customer = await session.get(Customer, conversation.customer_id)
    assert customer is not None
    fields = canned.fields_for(customer, agent, conversation.id)
    return [
        {"name": c.name, "title": c.title, "text": c.text}
        for c in canned.list_canned(customer.language, fields)
    ]


@router.post("/conversations/{conversation_id}/claim")
async def claim(
    conversation_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    """Starting a reply claims an unassigned conversation; one assigned to another stays so."""
    async with hub.work() as work:
        conversation = await work.session.get(Conversation, conversation_id, with_for_update=True)
        if conversation is None or not may_see(agent, conversation):
            raise NotFoundError(f"no conversation {conversation_id}")
        claimed = conversation.assignee_id is None
        if claimed:
            me = await work.session.get(Agent, agent.id)
            assert me is not None
            await do_assign(work, me, conversation, agent.id, None)
            await hub.router.record_manual(work, conversation, me, None)
        holder = await work.session.get(Agent, conversation.assignee_id or 0)
        answer = {
            "conversation_id": conversation.id,
            "claimed": conversation.assignee_id == agent.id,
            "assignee_id": conversation.assignee_id,
            "assignee_name": holder.name if holder else None,
        }
    if claimed:
        await hub.router.settle(hub, conversation_id, None)
    return answer


@router.get("/customers/{customer_id}/complaints")
async def complaints_box(
    request: Request,
    customer_id: int,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> HTMLResponse:
    async with hub.sessions() as session:
        await check_customer_visible(session, agent, customer_id)
        card = await get_card(session, customer_id, 1)
    return render(request, "console_complaints.html", agent, card=card)


@router.get("/customers/{customer_id}/history")
async def history_page(
    request: Request,
    customer_id: int,
    before: str | None = Query(default=None, max_length=200),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> HTMLResponse:
    async with hub.sessions() as session:
        await check_customer_visible(session, agent, customer_id)
        page = await get_history(session, customer_id, hub.settings.history_page_size, before)
    return render(
        request,
        "console_history.html",
        agent,
        customer_id=customer_id,
        entries=page.entries,
        next=page.next,
    )


@router.get("/calls/{interaction_id}/pop")
async def screen_pop(
    request: Request,
    interaction_id: int,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> HTMLResponse:
    async with hub.sessions() as session:
        call = await session.get(Interaction, interaction_id)
        if call is None or call.channel != "voice":
            raise NotFoundError(f"no call {interaction_id}")
        conversation = await session.get(Conversation, call.conversation_id or 0)
        if conversation is not None and not may_see(agent, conversation):
            raise NotFoundError(f"no call {interaction_id}")
        card = await card_context(hub, session, call.customer_id)
    return render(
        request,
        "console_pop.html",
        agent,
        call=call,
        conversation=conversation,
        caller=call.meta.get("unparseable_number") or call.sender,
        **card,
    )
