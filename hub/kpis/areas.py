"""The dashboard's areas and their figures, in the order the page shows them.

An area's figures are computed in parts (`PARTS`): figures that share a scan
(the period's conversations, the period's contacts) form one part and run in
one session, in one transaction, so they read it once and see the same data;
the parts run side by side, each on a connection of its own, so a dashboard
waits for its slowest part, not for the sum. `compute_area` computes one
area, `compute_areas` all four, `compute_figure` one figure.
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


# The parts of each area that share nothing, as lists of figure names; figures not
# listed form one further part of their area.
PARTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "service": (
        ("first_response", "resolution", "sla"),
        ("contacts", "contacts_per_customer", "top_contacts"),
    ),
}


def parts_of(area: str) -> list[tuple[str, ...]]:
    figures = get_area(area)
    parts = list(PARTS.get(area, ()))
    listed = {name for part in parts for name in part}
    rest = tuple(name for name in figures if name not in listed)
    return [*parts, rest] if rest else parts


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
    """PostgreSQL, for this transaction only: room for the period's sorts and hashes in
    memory (the default 4 MB spills a month of contacts grouped by customer to disk), and
    no JIT compilation (its tens of milliseconds per statement buy nothing for queries
    that run once, over rows the indexes already narrowed)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        await session.execute(text("SET LOCAL jit = off"))


async def _compute_part(
    hub: Hub, area: str, names: tuple[str, ...], query: KpiQuery
) -> dict[str, Table]:
    figures = get_area(area)
    async with hub.sessions() as session, session.begin():
        await prepare(session)
        return {name: await figures[name](session, query) for name in names}


async def compute_areas(
    hub: Hub, query: KpiQuery, areas: tuple[str, ...] = tuple(AREAS)
) -> dict[str, list[Table]]:
    """The areas' figures, every part in a session of its own, all side by side."""
    jobs = [(area, names) for area in areas for names in parts_of(area)]
    done = await asyncio.gather(*(_compute_part(hub, a, names, query) for a, names in jobs))
    computed: dict[str, dict[str, Table]] = {area: {} for area in areas}
    for (area, _names), tables in zip(jobs, done, strict=True):
        computed[area].update(tables)
    return {area: [computed[area][name] for name in get_area(area)] for area in areas}


async def compute_area(hub: Hub, area: str, query: KpiQuery) -> list[Table]:
    return (await compute_areas(hub, query, (area,)))[area]  # an unknown area: NotFoundError


async def compute_figure(hub: Hub, area: str, name: str, query: KpiQuery) -> Table:
    figure = get_figure(area, name)
    async with hub.sessions() as session, session.begin():
        await prepare(session)
        return await figure(session, query)
