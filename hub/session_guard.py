"""Ending sessions from the server: a session cookie is only as good as its agent's epoch.

The session cookie is signed, not stored, so the server cannot delete it. It
carries the agent's id and the `session_epoch` the agent had when signing in;
changing the password or deactivating the agent raises the epoch
(`hub.agents.end_sessions`), and from then on every cookie signed in before is
an empty session:

    cookie {agent_id, epoch}  ──►  agent active and epoch == agents.session_epoch ?
                                     yes: passes on unchanged
                                     no:  the session is cleared before any route
                                          sees it (and its cookie expired)

The guard is plain ASGI and sits just inside Starlette's SessionMiddleware, so
every page, API route and websocket behind it is covered, whoever wrote it. A
cookie from before epochs existed counts as epoch 0.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.models import Agent

AGENT_KEY = "agent_id"
EPOCH_KEY = "epoch"


def start_session(session: dict[str, Any], agent: Agent) -> None:
    """Sign the agent in on a session that was just cleared."""
    session[AGENT_KEY] = agent.id
    session[EPOCH_KEY] = agent.session_epoch or 0


async def is_session_current(hub: Any, session: dict[str, Any]) -> bool:
    """Whether the session's agent is active and signed in under their current epoch."""
    agent_id, epoch = session.get(AGENT_KEY), session.get(EPOCH_KEY, 0)
    if not isinstance(agent_id, int) or not isinstance(epoch, int):
        return False
    statement = select(Agent.session_epoch, Agent.is_active).where(Agent.id == agent_id)
    async with hub.sessions() as db:
        row = (await db.execute(statement)).first()
    return row is not None and bool(row.is_active) and row.session_epoch == epoch


class SessionGuard:
    """ASGI middleware that empties a session whose agent left or changed their password."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = scope.get("session") if scope["type"] in ("http", "websocket") else None
        if session and AGENT_KEY in session:
            hub = scope["app"].state.hub
            if not await is_session_current(hub, session):
                session.clear()
        await self.app(scope, receive, send)
