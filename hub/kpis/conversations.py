"""The period's conversation figures: first response, resolution and SLA attainment.

    first_response   conversations created in the period: how many, how many
                     answered, median and p90 of created → first response
    resolution       conversations closed in the period: median and p90 of
                     created → closed
    sla              conversations created in the period that have a first-
                     response target (`sla_due_at`, from their tier and
                     channel): met (answered by it), missed (answered later, or
                     not answered and past it), pending (neither yet);
                     attainment = met / (met + missed)

Each is broken down by channel, tier and team (the queue), with the total as
`by = all`. On PostgreSQL the three come from one pass: the conversations
created or closed in the period are read and joined to their customers once,
and every measure is one aggregate over the rows it concerns (a percentile
ignores the NULL of a row outside its set), so a dashboard pays one scan of
the period, not three. SQLite, without percentiles or grouping sets, asks
per figure (`hub.kpis.sql.rank_stats`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CTE, ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.kpis.query import KpiQuery
from hub.kpis.sql import (
    P90,
    Rows,
    applied,
    breakdown,
    constant,
    dialect_of,
    filtered,
    grouping_sets,
    in_period,
    once,
    rank_stats,
    seconds_between,
    tier_of,
)
from hub.kpis.tables import Table, share
from hub.models import Conversation, Customer

FILTERS = ("channel", "tier", "team")
OUTCOMES = ("met", "missed", "pending")


def _columns() -> dict[str, Any]:
    return {"channel": Conversation.channel, "tier": Customer.tier, "team": Conversation.queue}


def _dimensions() -> list[ColumnElement[Any]]:
    return [
        Conversation.channel.label("channel"),
        tier_of().label("tier"),
        func.coalesce(Conversation.queue, constant("none")).label("team"),
    ]


def _rows(query: KpiQuery, *columns: Any, where: Any) -> Any:
    """The filtered conversations matching `where`, with their dimensions and `columns`."""
    statement = (
        select(*_dimensions(), *columns)
        .join(Customer, Customer.id == Conversation.customer_id)
        .where(where)
    )
    return filtered(statement, query.filters, _columns())


def _created_in(query: KpiQuery) -> ColumnElement[bool]:
    return in_period(Conversation.created_at, query.period)


def _closed_in(query: KpiQuery) -> ColumnElement[bool]:
    return and_(Conversation.status == "closed", in_period(Conversation.closed_at, query.period))


def sla_outcome(now: Any) -> ColumnElement[str]:
    answered, due = Conversation.first_response_at, Conversation.sla_due_at
    return case(
        (due.is_(None), constant("none")),
        (answered <= due, constant("met")),
        (or_(answered.is_not(None), due <= now), constant("missed")),
        else_=constant("pending"),
    )


def _response(dialect: str) -> ColumnElement[int]:
    return seconds_between(dialect, Conversation.first_response_at, Conversation.created_at)


def _resolution(dialect: str) -> ColumnElement[int]:
    return seconds_between(dialect, Conversation.closed_at, Conversation.created_at)


# --- PostgreSQL: the three figures in one pass ----------------------------------


def _only(flag: Any, value: Any) -> ColumnElement[Any]:
    """`value` for the rows where `flag` holds, NULL elsewhere (aggregates skip NULLs)."""
    return case((flag, value))


def _measures(rows: Rows) -> list[ColumnElement[Any]]:
    created, closed = rows.c.created_in, rows.c.closed_in
    response, resolution = _only(created, rows.c.response), _only(closed, rows.c.resolution)
    target = and_(created, rows.c.outcome != constant("none"))
    return [
        func.count(_only(created, 1)),
        func.count(response),
        func.percentile_disc(0.5).within_group(response),
        func.percentile_disc(P90).within_group(response),
        func.count(_only(target, 1)),
        *(func.count(_only(and_(created, rows.c.outcome == constant(o)), 1)) for o in OUTCOMES),
        func.count(_only(closed, 1)),
        func.percentile_disc(0.5).within_group(resolution),
        func.percentile_disc(P90).within_group(resolution),
    ]


async def _one_pass(session: AsyncSession, query: KpiQuery) -> dict[str, list[tuple[Any, ...]]]:
    dialect = dialect_of(session)
    created, closed = _created_in(query), _closed_in(query)
    rows = _rows(
        query,
        created.label("created_in"),
        closed.label("closed_in"),
        _response(dialect).label("response"),
        _resolution(dialect).label("resolution"),
        sla_outcome(query.now).label("outcome"),
        where=or_(created, closed),
    ).subquery("period_rows")
    found: dict[str, list[tuple[Any, ...]]] = {"first_response": [], "sla": [], "resolution": []}
    for by, group, *m in await grouping_sets(session, rows, _measures(rows)):
        total = by == "all"  # the total's row comes even when the period is empty
        if m[0] or total:
            found["first_response"].append((by, group, m[0], m[1], m[2], m[3]))
        found["sla"].append((by, group, *m[4:8]))
        if m[8] or total:
            found["resolution"].append((by, group, m[8], m[9], m[10]))
    return found


async def _stats(session: AsyncSession, query: KpiQuery, figure: str) -> list[tuple[Any, ...]]:
    """PostgreSQL: the figure's rows from the shared pass, computed once per session."""
    memo = await once(session, ("conversations", query), lambda: _one_pass(session, query))
    return memo[figure]


# --- the figures ------------------------------------------------------------------


def _cte(query: KpiQuery, value: ColumnElement[Any], where: Any) -> CTE:
    # A CTE: SQLite materialises it once for the four breakdowns that read it.
    return _rows(query, value.label("value"), where=where).cte("period_rows")


async def _first_response_rows(session: AsyncSession, query: KpiQuery) -> list[tuple[Any, ...]]:
    if dialect_of(session) == "postgresql":
        return await _stats(session, query, "first_response")
    rows = _cte(query, _response("sqlite"), _created_in(query))
    return [tuple(row) for row in await rank_stats(session, rows)]


async def first_response(session: AsyncSession, query: KpiQuery) -> Table:
    return Table(
        "first_response",
        ("by", "group", "conversations", "answered", "median_seconds", "p90_seconds"),
        await _first_response_rows(session, query),
        applied(query.filters, FILTERS),
    )


async def _resolution_rows(session: AsyncSession, query: KpiQuery) -> list[tuple[Any, ...]]:
    if dialect_of(session) == "postgresql":
        return await _stats(session, query, "resolution")
    rows = _cte(query, _resolution("sqlite"), _closed_in(query))
    return [
        (by, group, measured, median, p90)
        for by, group, _n, measured, median, p90 in await rank_stats(session, rows)
    ]


async def resolution(session: AsyncSession, query: KpiQuery) -> Table:
    return Table(
        "resolution",
        ("by", "group", "closed", "median_seconds", "p90_seconds"),
        await _resolution_rows(session, query),
        applied(query.filters, FILTERS),
    )


async def _sla_rows(session: AsyncSession, query: KpiQuery) -> list[tuple[Any, ...]]:
    if dialect_of(session) == "postgresql":
        return await _stats(session, query, "sla")
    where = and_(_created_in(query), Conversation.sla_due_at.is_not(None))
    rows = _cte(query, sla_outcome(query.now), where)

    def aggregate(rows: Rows) -> list[ColumnElement[int]]:
        counts = (func.count(_only(rows.c.value == constant(o), 1)) for o in OUTCOMES)
        return [func.count(), *counts]

    return [tuple(row) for row in await breakdown(session, rows, aggregate)]


async def sla(session: AsyncSession, query: KpiQuery) -> Table:
    rows = [
        (by, group, due, met, missed, pending, share(met, met + missed))
        for by, group, due, met, missed, pending in await _sla_rows(session, query)
        if due  # the total's row comes even when no conversation had a target
    ]
    return Table(
        "sla",
        ("by", "group", "with_target", "met", "missed", "pending", "attainment"),
        rows,
        applied(query.filters, FILTERS),
    )
