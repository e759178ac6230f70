"""Agents as routing sees them: presence, load per channel, capacity, tiers, teams, languages.

An agent's load on a channel is the number of open conversations of that
channel assigned to them (read from `conversations`, so it is never out of
step; on the phone, only those with a call still going on). Their capacity
is their own `agent_routing.capacity` for the channel, else the rules
file's. "Idle since" is the last time routing gave them a conversation, or
when their presence last changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import ColumnElement, Row, Select, String, and_, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransaction

from hub.models import Agent, AgentRouting, Conversation, Interaction, utcnow
from routing.decision import Candidate, primary_language
from routing.rules import Rules

PRESENT = ("online", "away")
# Candidates read in a transaction, for routing's next decision in it: a batch of
# contacts (hub.intake) routes many conversations in one transaction, under the
# routing lock, and between two of its decisions only an assignment changes a
# load. So any assignment (`stamp_assigned`) forgets them.
_READ: WeakKeyDictionary[SessionTransaction, dict[Any, dict[int, Candidate]]] = WeakKeyDictionary()


def loads_query(agent_ids: list[int], channel: str | None = None) -> Select[Any]:
    statement = (
        select(Conversation.assignee_id, Conversation.channel, func.count())
        .where(
            Conversation.status == "open",
            Conversation.assignee_id.in_(agent_ids),
            or_(Conversation.channel != "voice", _has_live_call()),
        )
        .group_by(Conversation.assignee_id, Conversation.channel)
    )
    return statement if channel is None else statement.where(Conversation.channel == channel)


def _has_live_call() -> ColumnElement[bool]:
    """A voice conversation loads its agent only while one of its calls has not ended.

    The conversation stays open after the call for notes and callbacks; the
    call's end is in its meta (`ended_at`, see `hub.calls`).
    """
    return (
        select(Interaction.id)
        .where(
            Interaction.conversation_id == Conversation.id,
            Interaction.kind == "call",
            Interaction.meta["ended_at"].as_string().is_(None),
        )
        .exists()
    )


async def loads(
    session: AsyncSession, agent_ids: Iterable[int], channel: str | None = None
) -> dict[tuple[int, str], int]:
    """Open conversations per (agent, channel); `channel` narrows to one channel."""
    ids = list(agent_ids)
    if not ids:
        return {}
    rows = await session.execute(loads_query(ids, channel))
    return {(agent_id, on): count for agent_id, on, count in rows.all()}


def candidate(
    rules: Rules,
    agent: Agent | Row[Any],
    profile: AgentRouting | Row[Any] | None,
    channel: str,
    load: int,
) -> Candidate:
    """The agent as routing sees them on `channel`; `agent` may be a model or a row of it."""
    capacity = ((profile.capacity if profile else None) or {}).get(channel)
    languages = {agent.language, *(agent.languages or [])}
    last_assigned = profile.last_assigned_at if profile else None
    return Candidate(
        id=agent.id,
        name=agent.name,
        presence=agent.presence if agent.is_active else "offline",
        load=load,
        capacity=int(capacity) if capacity is not None else rules.capacity_for(channel),
        idle_since=_idle_since(last_assigned, agent.presence_changed_at, agent.created_at),
        tiers=frozenset((profile.tiers if profile else None) or ()),
        languages=frozenset(primary_language(lang) for lang in languages if lang),
        teams=frozenset(agent.teams or ()),
    )


def _idle_since(*moments: datetime | None) -> datetime:
    last_assigned, presence_changed, created = moments
    known = [moment for moment in (last_assigned, presence_changed) if moment is not None]
    return max(known) if known else created or utcnow()


# The columns a candidate is built from: plain rows are far cheaper than models.
CANDIDATE_COLUMNS = (
    Agent.id,
    Agent.name,
    Agent.presence,
    Agent.is_active,
    Agent.language,
    Agent.languages,
    Agent.teams,
    Agent.presence_changed_at,
    Agent.created_at,
    AgentRouting.tiers,
    AgentRouting.capacity,
    AgentRouting.last_assigned_at,
)


def candidates_query(also: Iterable[int | None] = (), team: str | None = None) -> Select[Any]:
    """Active agents who are present (online or away), of `team` when given, plus `also`."""
    extra = [agent_id for agent_id in also if agent_id is not None]
    condition = Agent.presence.in_(PRESENT)
    if team is not None:
        condition = and_(condition, is_in_team(team))
    if extra:
        condition = or_(condition, Agent.id.in_(extra))
    return (
        select(*CANDIDATE_COLUMNS)
        .outerjoin(AgentRouting, AgentRouting.agent_id == Agent.id)
        .where(Agent.is_active.is_(True), condition)
    )


def is_in_team(team: str) -> ColumnElement[bool]:
    """`Agent.teams` (a JSON list) names `team`: a text match on the stored JSON.

    Portable across SQLite and PostgreSQL; it narrows the rows read, and the
    decision checks membership exactly again, so a stray match costs nothing.
    """
    pattern = json.dumps(team).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return cast(Agent.teams, String).like(f"%{pattern}%", escape="\\")


async def read_candidates(
    session: AsyncSession,
    rules: Rules,
    channel: str,
    also: Iterable[int | None] = (),
    team: str | None = None,
    reuse: bool = False,
) -> dict[int, Candidate]:
    """Present agents (of `team` when given), plus the `also` ids, as candidates, by id.

    `reuse`: what this transaction read with the same arguments since its last
    assignment will do."""
    key = (channel, tuple(sorted(a for a in also if a is not None)), team)
    transaction = session.sync_session.get_transaction() if reuse else None
    read = _READ.setdefault(transaction, {}) if transaction is not None else {}
    if key in read:
        return read[key]
    rows = (await session.execute(candidates_query(also, team))).all()
    counted = await loads(session, [row.id for row in rows], channel)
    read[key] = {
        row.id: candidate(rules, row, row, channel, counted.get((row.id, channel), 0))
        for row in rows
    }
    return read[key]


async def find_profile(session: AsyncSession, agent_id: int) -> AgentRouting | None:
    return await session.get(AgentRouting, agent_id)


async def stamp_assigned(session: AsyncSession, agent_id: int, now: datetime) -> None:
    """Remember when routing last gave the agent a conversation (for longest idle)."""
    transaction = session.sync_session.get_transaction()
    if transaction is not None:
        _READ.pop(transaction, None)
    profile = await session.get(AgentRouting, agent_id)
    if profile is None:
        session.add(AgentRouting(agent_id=agent_id, last_assigned_at=now))
    else:
        profile.last_assigned_at = now
