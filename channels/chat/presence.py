"""Whether any agent is online to answer a chat now (`Agent.presence`).

TODO(hub): a read like this belongs in `hub.agents` (`has_agents_online`).
"""

from __future__ import annotations

from sqlalchemy import exists, select

from hub.context import Hub
from hub.models import Agent


async def has_agents_online(hub: Hub) -> bool:
    statement = select(exists().where(Agent.presence == "online", Agent.is_active.is_(True)))
    async with hub.sessions() as session:
        return bool(await session.scalar(statement))
