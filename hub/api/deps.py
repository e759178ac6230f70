"""What every API endpoint needs: the running hub and the signed-in agent.

An agent is known by `Authorization: Bearer TOKEN` or by the session cookie
(a cookie signed in before the agent's password changed or they were
deactivated was emptied already by `hub.session_guard`).
Missing or wrong credentials are 401; a role that may not do a thing is 403.
A state-changing request authenticated by cookie must carry the session's CSRF
token or come from our own origin when the browser says where it comes from
(see `hub.csrf`; SameSite=Lax does the rest).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request

from hub.agents import Role, find_agent_by_token, has_role
from hub.context import Hub
from hub.csrf import is_request_allowed
from hub.models import Agent

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def hub_of(request: Request) -> Hub:
    return request.app.state.hub


async def get_hub(request: Request) -> Hub:
    """`hub_of`, as a dependency: async, because FastAPI runs a plain `def` dependency
    in a worker thread, a hop per request."""
    return hub_of(request)


async def current_agent(request: Request) -> Agent:
    hub = hub_of(request)
    header = request.headers.get("authorization")
    async with hub.sessions() as session:
        if header is not None:
            scheme, _, token = header.partition(" ")
            agent = (
                await find_agent_by_token(session, token.strip())
                if scheme.lower() == "bearer"
                else None
            )
        else:
            agent = await _agent_from_session(request, session)
    if agent is None:
        raise HTTPException(
            401, "sign in or send a valid API token", headers={"WWW-Authenticate": "Bearer"}
        )
    return agent


async def _agent_from_session(request: Request, session: object) -> Agent | None:
    agent_id = request.session.get("agent_id")
    if not isinstance(agent_id, int):
        return None
    if not is_request_allowed(request, request.method, None):
        raise HTTPException(403, "cross-site request refused")
    agent = await session.get(Agent, agent_id)  # type: ignore[attr-defined]
    return agent if agent is not None and agent.is_active else None


def require(role: Role) -> Callable[..., Awaitable[Agent]]:
    async def dependency(agent: Agent = Depends(current_agent)) -> Agent:
        if not has_role(agent, role):
            raise HTTPException(403, f"this needs the {role} role")
        return agent

    return dependency
