"""`/api/agents`: who is there, and the signed-in agent's own presence."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import func, select

from hub.agents import stamp_presence
from hub.api.deps import current_agent, get_hub
from hub.api.schemas import PresenceIn
from hub.context import Hub
from hub.models import Agent, Conversation

router = APIRouter(prefix="/api/agents", tags=["agents"])


def agent_view(agent: Agent, load: int = 0) -> dict[str, Any]:
    return {
        "id": agent.id,
        "email": agent.email,
        "name": agent.name,
        "role": agent.role,
        "language": agent.language,
        "presence": agent.presence,
        "presence_changed_at": agent.presence_changed_at,
        "open_conversations": load,
    }


@router.get("")
async def agents(hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)) -> list[Any]:
    """Every active agent with presence and load (open conversations assigned)."""
    load = (
        select(Conversation.assignee_id, func.count().label("open"))
        .where(Conversation.status == "open", Conversation.assignee_id.is_not(None))
        .group_by(Conversation.assignee_id)
        .subquery()
    )
    statement = (
        select(Agent, func.coalesce(load.c.open, 0))
        .outerjoin(load, load.c.assignee_id == Agent.id)
        .where(Agent.is_active.is_(True))
        .order_by(Agent.name, Agent.id)
    )
    async with hub.sessions() as session:
        rows = (await session.execute(statement)).all()
    return [agent_view(row[0], row[1]) for row in rows]


@router.get("/me")
async def me(agent: Agent = Depends(current_agent)) -> dict[str, Any]:
    return agent_view(agent)


@router.put("/me/presence")
async def presence(
    body: PresenceIn, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    async with hub.work() as work:
        me = await work.session.get(Agent, agent.id)
        assert me is not None
        stamp_presence(me, body.status)
        work.emit("agent.presence_changed", agent_id=me.id, status=me.presence)
        return agent_view(me)
