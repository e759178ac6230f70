"""Agents' figures: who uses the hub, for how long, and how much they close.

    agents         one row per agent: role, account (`active` or
                   `deactivated`), presence now, seconds online and away in
                   the period (from the presence log), conversations handled
                   (closed in the period while assigned to them), and whether
                   they were active in the period (present or handled any)
    agent_summary  accounts active and deactivated; of the active accounts,
                   how many were active in the period and how many were not

The team filter keeps the agents whose teams name it; channel and tier narrow
the conversations counted as handled.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.kpis.presence import presence_seconds
from hub.kpis.query import KpiQuery
from hub.kpis.sql import applied, filtered, in_period, once
from hub.kpis.tables import Table
from hub.models import Agent, Conversation, Customer

COLUMNS = (
    "agent_id",
    "agent",
    "role",
    "account",
    "presence_now",
    "online_seconds",
    "away_seconds",
    "handled",
    "active_in_period",
)


async def _chosen_agents(session: AsyncSession, query: KpiQuery) -> list[Agent]:
    agents = list(await session.scalars(select(Agent).order_by(Agent.name, Agent.id)))
    team = query.filters.team
    return [agent for agent in agents if team is None or team in (agent.teams or [])]


async def _handled(session: AsyncSession, query: KpiQuery) -> dict[int, int]:
    statement = select(Conversation.assignee_id, func.count()).where(
        Conversation.status == "closed",
        Conversation.assignee_id.is_not(None),
        in_period(Conversation.closed_at, query.period),
    )
    if query.filters.tier:  # customers are read only for their tier
        statement = statement.join(Customer, Customer.id == Conversation.customer_id)
    columns = {"channel": Conversation.channel, "tier": Customer.tier}
    statement = filtered(statement, query.filters, columns).group_by(Conversation.assignee_id)
    return dict((await session.execute(statement)).all())


async def agent_rows(session: AsyncSession, query: KpiQuery) -> Table:
    return await once(session, ("agents", query), lambda: _agent_rows(session, query))


async def _agent_rows(session: AsyncSession, query: KpiQuery) -> Table:
    chosen = await _chosen_agents(session, query)
    handled = await _handled(session, query)
    seconds = await presence_seconds(session, [a.id for a in chosen], query.period, query.now)
    rows = []
    for agent in chosen:
        online, away = round(seconds[agent.id]["online"]), round(seconds[agent.id]["away"])
        count = handled.get(agent.id, 0)
        account = "active" if agent.is_active else "deactivated"
        active = bool(online or away or count)
        rows.append(
            (agent.id, agent.name, agent.role, account, agent.presence, online, away, count, active)
        )
    return Table("agents", COLUMNS, rows, applied(query.filters, ("channel", "tier", "team")))


async def agent_summary(session: AsyncSession, query: KpiQuery) -> Table:
    table = await agent_rows(session, query)  # computed once per session
    records = table.records()
    active_accounts = [r for r in records if r["account"] == "active"]
    in_period = sum(1 for r in active_accounts if r["active_in_period"])
    row = (
        len(active_accounts),
        len(records) - len(active_accounts),
        in_period,
        len(active_accounts) - in_period,
    )
    return Table(
        "agent_summary",
        ("accounts_active", "accounts_deactivated", "active_in_period", "inactive_in_period"),
        [row],
        table.applied,
    )


FIGURES = {"agent_summary": agent_summary, "agents": agent_rows}
