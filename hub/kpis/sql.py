"""The SQL the figures share: durations, percentiles, age buckets, breakdowns, on both engines.

Percentiles are nearest-rank (PostgreSQL's `percentile_disc`): the p-th
percentile of n values is the value at rank ceil(p * n) in ascending order,
so the median of 4 values is the 2nd, and every reported time is one that
occurred. `rank_stats` computes them in the database, so only one row per
group leaves it: PostgreSQL in one pass with GROUPING SETS and
`percentile_disc`, SQLite (which has neither) with window functions (rank and
count per group), one UNION ALL part per dimension over rows it materialises
once. (The period's conversations, the largest set, take a cheaper way:
`hub.kpis.conversations`.) Durations are whole seconds, rounded.

A breakdown gives one row per group of each dimension (`channel`, `tier`,
`team`, and `all` for the total) over the same rows: `(by, group, ...)`, the
total first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Integer,
    Select,
    String,
    Subquery,
    and_,
    case,
    cast,
    extract,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from hub.kpis.query import Filters, Period
from hub.models import Customer

DIMENSIONS = ("all", "channel", "tier", "team")
# Age buckets of open work, youngest first: (name, the age it stays under; None: no limit).
AGES: tuple[tuple[str, timedelta | None], ...] = (
    ("under_1h", timedelta(hours=1)),
    ("1h_4h", timedelta(hours=4)),
    ("4h_24h", timedelta(hours=24)),
    ("1d_3d", timedelta(days=3)),
    ("3d_7d", timedelta(days=7)),
    ("over_7d", None),
)
AGE_NAMES = tuple(name for name, _ in AGES)


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def seconds_between(dialect: str, later: Any, earlier: Any) -> ColumnElement[int]:
    if dialect == "postgresql":
        return cast(func.round(extract("epoch", later - earlier)), Integer)
    return cast(func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0), Integer)


def constant(text: str) -> ColumnElement[str]:
    """A fixed word of ours inline in the SQL: a bound parameter in GROUP BY or PARTITION BY
    would be a different parameter each time it appears, which PostgreSQL cannot match up."""
    return literal_column(f"'{text}'", String)


def tier_of(column: Any = Customer.tier) -> ColumnElement[str]:
    return func.coalesce(column, constant("none"))


def tier_matches(tier: str, column: Any = Customer.tier) -> ColumnElement[bool]:
    return column.is_(None) if tier == "none" else column == tier


def in_period(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


def age_bucket(column: Any, now: datetime) -> ColumnElement[str]:
    """The age bucket at `now` of work that started at `column` (how long it has waited)."""
    whens = [(column > now - limit, constant(name)) for name, limit in AGES if limit is not None]
    return case(*whens, else_=constant(AGES[-1][0]))


def filtered(statement: Select[Any], filters: Filters, columns: dict[str, Any]) -> Select[Any]:
    """`statement` narrowed by the filters whose column the figure has (`columns`)."""
    if filters.channel and "channel" in columns:
        statement = statement.where(columns["channel"] == filters.channel)
    if filters.tier and "tier" in columns:
        statement = statement.where(tier_matches(filters.tier, columns["tier"]))
    if filters.team and "team" in columns:
        statement = statement.where(columns["team"] == filters.team)
    return statement


def applied(filters: Filters, columns: Sequence[str]) -> tuple[str, ...]:
    given = filters.as_dict()
    return tuple(name for name in ("channel", "tier", "team") if given[name] and name in columns)


Rows = Subquery | CTE  # a figure's rows, named like the dimensions, and `value`
# PostgreSQL's percentile_disc takes rank ceil(p * n) computed in floating point, where
# 0.9 * 70 is 63.000000000000007 (rank 64, not 63); a hair under 0.9 gives the exact
# nearest rank for every n below 10^8 (0.9 * n is an integer or at least 0.1 from one).
P90 = 0.9 - 1e-9


async def rank_stats(
    session: AsyncSession, rows: Rows, dims: Sequence[str] = DIMENSIONS
) -> list[Any]:
    """Per dimension and group of `rows` (a `value` column, NULL when not measured): how many
    rows, how many measured, the median and the 90th percentile of the measured values.

    PostgreSQL computes it in one pass (GROUPING SETS and percentile_disc); SQLite, which
    has neither, ranks the values with window functions, once per dimension.
    """
    if dialect_of(session) == "postgresql":
        value = rows.c.value
        measures = [
            func.count(),
            func.count(value),
            func.percentile_disc(0.5).within_group(value),
            func.percentile_disc(P90).within_group(value),
        ]
        return await grouping_sets(session, rows, measures, dims)
    result = await session.execute(union_all(*(_ranked(rows, d) for d in dims)))
    return sort_breakdown(result.all())


def _ranked(rows: Rows, dimension: str) -> Select[Any]:
    group = constant("all") if dimension == "all" else rows.c[dimension]
    window = {"partition_by": group}
    ranked = select(
        group.label("grp"),
        rows.c.value,
        func.row_number().over(order_by=rows.c.value.asc().nulls_last(), **window).label("rn"),
        func.count(rows.c.value).over(**window).label("n"),
        func.count().over(**window).label("n_rows"),
    ).subquery()
    n, rank = ranked.c.n, ranked.c.rn
    return select(
        constant(dimension).label("by"),
        ranked.c.grp,
        func.max(ranked.c.n_rows).label("n_rows"),
        func.max(n).label("measured"),
        func.max(case((rank == (n + 1) // 2, ranked.c.value))).label("median"),
        func.max(case((rank == (9 * n + 9) // 10, ranked.c.value))).label("p90"),
    ).group_by(ranked.c.grp)


async def grouping_sets(
    session: AsyncSession,
    rows: Rows,
    measures: Sequence[Any],
    dims: Sequence[str] = DIMENSIONS,
) -> list[Any]:
    """PostgreSQL: `measures` of `rows` per group of each dimension in one pass, as rows
    `(by, group, *measures)`, the total first (it comes even when `rows` is empty)."""
    named = [d for d in dims if d != "all"]
    sets = [rows.c[d] for d in named] + ([literal_column("()")] if "all" in dims else [])
    flags = [func.grouping(rows.c[d]) for d in named]
    statement = select(*flags, *(rows.c[d] for d in named), *measures).group_by(
        func.grouping_sets(*sets)
    )
    found = []
    for row in await session.execute(statement):
        grouped_by = [d for d, flag in zip(named, row[: len(named)], strict=True) if flag == 0]
        values = row[len(named) : 2 * len(named)]
        by = grouped_by[0] if grouped_by else "all"
        group = values[named.index(by)] if grouped_by else "all"
        found.append((by, group, *row[2 * len(named) :]))
    return sort_breakdown(found)


def sort_breakdown(rows: Sequence[Any]) -> list[Any]:
    """Total first, then by dimension in DIMENSIONS order, groups alphabetically."""
    return sorted(rows, key=lambda row: (DIMENSIONS.index(row[0]), str(row[1])))


async def once(session: AsyncSession, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
    """`compute()` once per session and key: figures that share a scan run it once."""
    memo = session.info.setdefault("kpis", {})
    if key not in memo:
        memo[key] = await compute()
    return memo[key]
