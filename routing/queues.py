"""The queues: conversations waiting for an agent, one queue per team.

A queue is the waiting rows of `routing_states` with that `queue`, ordered by
priority (highest first), then by how long they have waited, then by id. A
waiting conversation may be reserved: its key-account agent (and, after the
rule's wait, the deputy) may take it before the whole team may (`team_open`).

Routing decisions are serialised, so two of them never give one agent more
than their capacity or one conversation to two agents: on PostgreSQL each
takes a transaction-scoped advisory lock; on SQLite every writing transaction
holds the database's write lock already (`hub.db` begins them IMMEDIATE).
"""

from __future__ import annotations

from collections.abc import Iterable
from weakref import WeakSet

from sqlalchemy import Select, and_, false, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransaction

from hub.models import RoutingState

# Any fixed number will do; it names "routing" among the hub's advisory locks.
ROUTING_LOCK = 0x6F6D6E69
# Transactions (or savepoints) that hold the lock: a batch of contacts routes many
# conversations in one transaction and asks once. Per savepoint, because one
# rolled back gives up what it took.
_HOLDING: WeakSet[SessionTransaction] = WeakSet()


async def lock_routing(session: AsyncSession) -> None:
    """Serialise routing decisions until the transaction ends (see the module docstring)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    sync = session.sync_session
    current = sync.get_nested_transaction() or sync.get_transaction()
    if current is not None and current in _HOLDING:
        return
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROUTING_LOCK})
    if current is not None:
        _HOLDING.add(current)


def waiting_for(
    agent_id: int,
    teams: Iterable[str],
    limit: int,
    full_on: Iterable[str] = (),
    tiers: Iterable[str] = (),
) -> Select[tuple[RoutingState]]:
    """The waiting conversations this agent may take, in queue order.

    `full_on`: channels the agent has no room on; `tiers`: the tiers they serve
    (empty: all). Left out here, so that they cannot crowd out what fits.
    """
    team_list = sorted(teams)
    open_to_team = (
        and_(RoutingState.team_open.is_(True), RoutingState.queue.in_(team_list))
        if team_list
        else false()
    )
    statement = select(RoutingState).where(
        RoutingState.waiting.is_(True),
        or_(
            RoutingState.reserved_agent_id == agent_id,
            RoutingState.deputy_agent_id == agent_id,
            open_to_team,
        ),
    )
    if full := sorted(full_on):
        statement = statement.where(RoutingState.channel.not_in(full))
    if served := sorted(tiers):
        statement = statement.where(RoutingState.tier.in_(served))
    return statement.order_by(
        RoutingState.priority.desc(), RoutingState.waiting_since, RoutingState.conversation_id
    ).limit(limit)


async def find_waiting(
    session: AsyncSession,
    agent_id: int,
    teams: Iterable[str],
    limit: int,
    full_on: Iterable[str] = (),
    tiers: Iterable[str] = (),
) -> list[RoutingState]:
    return list(await session.scalars(waiting_for(agent_id, teams, limit, full_on, tiers)))


async def has_waiting(session: AsyncSession) -> bool:
    statement = select(RoutingState.conversation_id).where(RoutingState.waiting.is_(True)).limit(1)
    return (await session.scalar(statement)) is not None
