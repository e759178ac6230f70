"""The presence log: every change of an agent's presence, so presence time can be summed.

`log_presence` is called where presence changes (`routing.presence.set_presence`),
inside the same transaction, so the log and `agents.presence` never disagree.
`presence_seconds` sums, per agent, the time spent online and away within a
period, from the status each agent had when the period began (its last change
before) and its changes inside it; time after `now` is not counted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.kpis.query import Period
from hub.kpis.sql import dialect_of, seconds_between
from hub.models import Agent, PresenceChange, utcnow

COUNTED = ("online", "away")


def log_presence(session: AsyncSession, agent: Agent) -> None:
    """Record the presence just stamped on `agent` (call after `stamp_presence`)."""
    moment = agent.presence_changed_at or utcnow()
    session.add(PresenceChange(agent_id=agent.id, status=agent.presence, at=moment))


async def _prior_statuses(
    session: AsyncSession, agent_ids: list[int], start: datetime
) -> dict[int, str]:
    """Each agent's status when the period began: their last change before it (one index seek)."""
    before = (
        select(PresenceChange.status)
        .where(PresenceChange.agent_id == Agent.id, PresenceChange.at < start)
        .order_by(PresenceChange.at.desc(), PresenceChange.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    statement = select(Agent.id, before).where(Agent.id.in_(agent_ids))
    return {agent_id: status for agent_id, status in await session.execute(statement) if status}


async def presence_seconds(
    session: AsyncSession, agent_ids: list[int], period: Period, now: datetime
) -> dict[int, dict[str, float]]:
    """Per agent: seconds online and away within the period (up to `now`).

    The changes inside the period are summed in the database, each lasting until the
    agent's next change (LEAD) or the period's end; the stretch before an agent's first
    change inside the period counts for the status they had when it began.
    """
    totals = {agent_id: dict.fromkeys(COUNTED, 0.0) for agent_id in agent_ids}
    end = min(period.end, now)
    if end <= period.start or not agent_ids:
        return totals
    inside = [
        PresenceChange.agent_id.in_(agent_ids),
        PresenceChange.at >= period.start,
        PresenceChange.at < end,
    ]
    following = func.lead(PresenceChange.at).over(
        partition_by=PresenceChange.agent_id, order_by=(PresenceChange.at, PresenceChange.id)
    )
    changes = (
        select(
            PresenceChange.agent_id,
            PresenceChange.status,
            PresenceChange.at,
            following.label("until"),
        )
        .where(*inside)
        .subquery()
    )
    lasting = seconds_between(
        dialect_of(session), func.coalesce(changes.c.until, end), changes.c.at
    )
    summed = select(
        changes.c.agent_id, changes.c.status, func.sum(lasting), func.min(changes.c.at)
    ).group_by(changes.c.agent_id, changes.c.status)
    first_change: dict[int, datetime] = {}
    for agent_id, status, spent, earliest in await session.execute(summed):
        if status in COUNTED:
            totals[agent_id][status] += float(spent or 0)
        first_change[agent_id] = min(earliest, first_change.get(agent_id, earliest))
    for agent_id, status in (await _prior_statuses(session, agent_ids, period.start)).items():
        if status in COUNTED:
            totals[agent_id][status] += (
                first_change.get(agent_id, end) - period.start
            ).total_seconds()
    return totals
