"""`/api/agents`: who is there, the signed-in agent's own presence, and routing profiles.

Presence goes through the hub's router (`Router.set_presence`), so an agent
who comes online is handed the conversations waiting for them. A routing
profile (teams, languages, tiers served, capacity per channel, deputy) is
set by a supervisor. Changing one's password, or an admin deactivating an
agent, ends that agent's sessions and API tokens (`hub.session_guard`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from hub.agents import do_change_password, do_deactivate, is_password_correct
from hub.api.deps import current_agent, get_hub, require
from hub.api.schemas import AgentRoutingIn, PresenceIn
from hub.audit import record
from hub.context import Hub
from hub.errors import ForbiddenError, InvalidInputError, NotFoundError
from hub.models import Agent, AgentRouting, Conversation
from hub.session_guard import AGENT_KEY, EPOCH_KEY

router = APIRouter(prefix="/api/agents", tags=["agents"])


def agent_view(agent: Agent, load: int = 0, profile: AgentRouting | None = None) -> dict[str, Any]:
    return {
        "id": agent.id,
        "email": agent.email,
        "name": agent.name,
        "role": agent.role,
        "language": agent.language,
        "languages": list(agent.languages or []),
        "teams": list(agent.teams or []),
        "presence": agent.presence,
        "presence_changed_at": agent.presence_changed_at,
        "open_conversations": load,
        "tiers": list(profile.tiers) if profile else [],
        "capacity": dict(profile.capacity) if profile else {},
        "deputy_agent_id": profile.deputy_agent_id if profile else None,
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
        select(Agent, func.coalesce(load.c.open, 0), AgentRouting)
        .outerjoin(load, load.c.assignee_id == Agent.id)
        .outerjoin(AgentRouting, AgentRouting.agent_id == Agent.id)
        .where(Agent.is_active.is_(True))
        .order_by(Agent.name, Agent.id)
    )
    async with hub.sessions() as session:
        rows = (await session.execute(statement)).all()
    return [agent_view(row[0], row[1], row[2]) for row in rows]


@router.get("/me")
async def me(agent: Agent = Depends(current_agent)) -> dict[str, Any]:
    return agent_view(agent)


@router.put("/me/presence")
async def presence(
    body: PresenceIn, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    """Set my presence; coming online hands me the conversations waiting for me."""
    await hub.router.set_presence(hub, agent.id, body.status)
    async with hub.sessions() as session:
        me = await session.get(Agent, agent.id)
        assert me is not None
        return agent_view(me, profile=await session.get(AgentRouting, agent.id))


@router.put("/{agent_id}/routing")
async def set_routing_profile(
    agent_id: int,
    body: AgentRoutingIn,
    hub: Hub = Depends(get_hub),
    actor: Agent = Depends(require("supervisor")),
) -> dict[str, Any]:
    """Set what routing needs of an agent; fields left out stay as they are."""
    async with hub.work() as work:
        target = await work.session.get(Agent, agent_id)
        if target is None:
            raise NotFoundError(f"no agent {agent_id}")
        profile = await work.session.get(AgentRouting, agent_id)
        if profile is None:
            profile = AgentRouting(agent_id=agent_id, tiers=[], capacity={})
            work.session.add(profile)
        await _apply_profile(work.session, target, profile, body)
        changed = body.model_dump(exclude_unset=True)
        record(work.session, actor.id, "agent.routing_changed", "agent", agent_id, **changed)
        work.emit("agent.routing_changed", agent_id=agent_id)
        await work.session.flush()
        return agent_view(target, profile=profile)


async def _apply_profile(
    session: Any, target: Agent, profile: AgentRouting, body: AgentRoutingIn
) -> None:
    if body.teams is not None:
        target.teams = sorted(set(body.teams))
    if body.languages is not None:
        target.languages = sorted(set(body.languages))
    if body.tiers is not None:
        profile.tiers = sorted(set(body.tiers))
    if body.capacity is not None:
        profile.capacity = dict(body.capacity)
    if "deputy_agent_id" in body.model_fields_set:
        deputy = body.deputy_agent_id
        if deputy is not None and (deputy == target.id or await session.get(Agent, deputy) is None):
            raise InvalidInputError(f"no other agent {deputy}", field="deputy_agent_id")
        profile.deputy_agent_id = deputy


class PasswordIn(BaseModel):
    """Passwords are taken as typed: no whitespace is stripped."""

    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(max_length=1000)
    new_password: str = Field(max_length=1000)


@router.put("/me/password")
async def change_password(
    body: PasswordIn,
    request: Request,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Change my password; every other session and every API token of mine ends.

    A session cookie that made the change stays signed in; API tokens are all
    revoked, the one that made the change too (the answer says how many)."""
    async with hub.work() as work:
        me = await work.session.get(Agent, agent.id)
        assert me is not None
        if not is_password_correct(me.password_hash, body.current_password):
            raise ForbiddenError("the current password is wrong", field="current_password")
        revoked = await do_change_password(work.session, me, body.new_password)
        record(work.session, agent.id, "agent.password_changed", "agent", agent.id)
        epoch = me.session_epoch
    if request.session.get(AGENT_KEY) == agent.id:
        request.session[EPOCH_KEY] = epoch
    return {"sessions_ended": True, "tokens_revoked": revoked}


@router.post("/{agent_id}/deactivate")
async def deactivate(
    agent_id: int, hub: Hub = Depends(get_hub), actor: Agent = Depends(require("admin"))
) -> dict[str, Any]:
    """Deactivate an agent: their sessions and tokens end at once, sign-in is refused."""
    if agent_id == actor.id:
        raise InvalidInputError("an admin cannot deactivate themselves", field="agent_id")
    async with hub.work() as work:
        target = await work.session.get(Agent, agent_id)
        if target is None:
            raise NotFoundError(f"no agent {agent_id}")
        revoked = await do_deactivate(work.session, target)
        record(work.session, actor.id, "agent.deactivated", "agent", agent_id)
        work.emit("agent.deactivated", agent_id=agent_id)
        return {**agent_view(target), "is_active": False, "tokens_revoked": revoked}
