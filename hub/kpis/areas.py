"""The dashboard's areas and their figures, in the order the page shows them.

`compute_area` runs an area's figures in one read-only session, in one
transaction, so all of them see the same data (and share what they scan in
common); `compute_areas` runs the four side by side, each on a connection of
its own; `compute_figure` runs one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.context import Hub
from hub.errors import NotFoundError
from hub.kpis import agents, campaigns, quality, service
from hub.kpis.query import KpiQuery
from hub.kpis.tables import Table

Figure = Callable[[AsyncSession, KpiQuery], Awaitable[Table]]
WORK_MEM = "64MB"

AREAS: dict[str, dict[str, Figure]] = {
    "service": service.FIGURES,
    "agents": agents.FIGURES,
    "campaigns": campaigns.FIGURES,
    "quality": quality.FIGURES,
}


def get_area(name: str) -> dict[str, Figure]:
    if name not in AREAS:
        raise NotFoundError(f"no figures area {name!r}; there are {', '.join(AREAS)}")
    return AREAS[name]


def get_figure(area: str, name: str) -> Figure:
    figures = get_area(area)
    if name not in figures:
        raise NotFoundError(f"no figure {name!r} in {area}; there are {', '.join(figures)}")
    return figures[name]


async def prepare(session: AsyncSession) -> None:
    """PostgreSQL: room for the period's sorts and hashes in memory (the default 4 MB
    spills a month of contacts grouped by customer to disk), for this transaction only."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))


async def compute_area(hub: Hub, area: str, query: KpiQuery) -> list[Table]:
    figures = get_area(area)
    async with hub.sessions() as session, session.begin():
        await prepare(session)
        return [await figure(session, query) for figure in figures.values()]


async def compute_areas(hub: Hub, query: KpiQuery) -> dict[str, list[Table]]:
    """Every area, each in a session of its own, side by side (the page waits for the slowest)."""
    tables = await asyncio.gather(*(compute_area(hub, area, query) for area in AREAS))
    return dict(zip(AREAS, tables, strict=True))


async def compute_figure(hub: Hub, area: str, name: str, query: KpiQuery) -> Table:
    figure = get_figure(area, name)
    async with hub.sessions() as session, session.begin():
        await prepare(session)
        return await figure(session, query)
