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
`by = all`. The three come from one pass over the conversations created or
closed in the period, joined to their customers once and grouped by channel,
tier and team together: per such group the database counts, and lists the
durations (whole seconds). Every breakdown group is a union of these groups,
so its counts are their sums and its percentiles are read from their
durations merged, here: each list is sorted once, and sorting the joined
(already sorted) runs of a breakdown group is a merge. Percentiles are
nearest-rank, as `hub.kpis.sql` defines them. One sort of the period's
durations instead of one per dimension (GROUPING SETS with `percentile_disc`
sorted the rows again for every dimension) makes this the cheapest of the
ways tried on 10,000,000 history entries (`bench/kpis.py`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, String, and_, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.kpis.query import KpiQuery
from hub.kpis.sql import (
    DIMENSIONS,
    applied,
    constant,
    dialect_of,
    filtered,
    in_period,
    once,
    seconds_between,
    sort_breakdown,
    tier_of,
)
from hub.kpis.tables import Table, share
from hub.models import Conversation, Customer

FILTERS = ("channel", "tier", "team")
OUTCOMES = ("met", "missed", "pending")


def sla_outcome(now: Any) -> ColumnElement[str]:
    answered, due = Conversation.first_response_at, Conversation.sla_due_at
    return case(
        (due.is_(None), constant("none")),
        (answered <= due, constant("met")),
        (or_(answered.is_not(None), due <= now), constant("missed")),
        else_=constant("pending"),
    )


def _only(flag: Any, value: Any) -> ColumnElement[Any]:
    """`value` for the rows where `flag` holds, NULL elsewhere (aggregates skip NULLs)."""
    return case((flag, value))


def _durations(dialect: str, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """The group's durations: an integer array on PostgreSQL, a comma-separated text on
    SQLite (which has no arrays); NULLs (rows outside the measure) left out."""
    if dialect == "postgresql":
        return func.array_agg(value).filter(value.is_not(None))
    return func.aggregate_strings(cast(value, String), ",")


def _groups(session: AsyncSession, query: KpiQuery) -> Any:
    """Per channel, tier and team: created, their durations to the first response, with a
    target and by outcome, closed, their durations to closing."""
    dialect = dialect_of(session)
    created = in_period(Conversation.created_at, query.period)
    closed = and_(Conversation.status == "closed", in_period(Conversation.closed_at, query.period))
    response = seconds_between(dialect, Conversation.first_response_at, Conversation.created_at)
    resolution = seconds_between(dialect, Conversation.closed_at, Conversation.created_at)
    outcome = sla_outcome(query.now)
    dimensions = (
        Conversation.channel,
        tier_of(),
        func.coalesce(Conversation.queue, constant("none")),
    )
    statement = (
        select(
            *dimensions,
            func.count(_only(created, 1)),
            _durations(dialect, _only(created, response)),
            func.count(_only(and_(created, Conversation.sla_due_at.is_not(None)), 1)),
            *(func.count(_only(and_(created, outcome == constant(o)), 1)) for o in OUTCOMES),
            func.count(_only(closed, 1)),
            _durations(dialect, _only(closed, resolution)),
        )
        .join(Customer, Customer.id == Conversation.customer_id)
        .where(or_(created, closed))
    )
    columns = {"channel": Conversation.channel, "tier": Customer.tier, "team": Conversation.queue}
    return filtered(statement, query.filters, columns).group_by(*dimensions)


@dataclass
class Tally:
    """One breakdown group's counts and durations, summed over the groups it unites."""

    created: int = 0
    responses: list[int] = field(default_factory=list)
    with_target: int = 0
    outcomes: list[int] = field(default_factory=lambda: [0] * len(OUTCOMES))
    closed: int = 0
    resolutions: list[int] = field(default_factory=list)


def _parse(durations: list[int] | str | None) -> list[int]:
    if isinstance(durations, str):
        return sorted(int(part) for part in durations.split(","))
    return sorted(durations or ())


def nearest_rank(ordered: list[int], numerator: int, denominator: int) -> int | None:
    """The value at rank ceil(n * numerator / denominator) of `ordered` (ascending)."""
    if not ordered:
        return None
    return ordered[-(-len(ordered) * numerator // denominator) - 1]


async def _tallies(session: AsyncSession, query: KpiQuery) -> dict[tuple[str, str], Tally]:
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    tallies["all", "all"] = Tally()  # the total's row comes even when the period is empty
    for channel, tier, team, *m in await session.execute(_groups(session, query)):
        responses, resolutions = _parse(m[1]), _parse(m[7])
        named = {"channel": channel, "tier": tier, "team": team}
        for dimension in DIMENSIONS:
            tally = tallies[dimension, named.get(dimension, "all")]
            tally.created += m[0]
            tally.responses += responses
            tally.with_target += m[2]
            tally.outcomes = [a + b for a, b in zip(tally.outcomes, m[3:6], strict=True)]
            tally.closed += m[6]
            tally.resolutions += resolutions
    for tally in tallies.values():
        tally.responses.sort()  # joined sorted runs: a merge
        tally.resolutions.sort()
    return tallies


async def _tallies_once(session: AsyncSession, query: KpiQuery) -> dict[tuple[str, str], Tally]:
    return await once(session, ("conversations", query), lambda: _tallies(session, query))


def _rows(tallies: dict[tuple[str, str], Tally], keep: Any, row: Any) -> list[tuple[Any, ...]]:
    chosen = [(by, group, *row(t)) for (by, group), t in tallies.items() if by == "all" or keep(t)]
    return sort_breakdown(chosen)


async def first_response(session: AsyncSession, query: KpiQuery) -> Table:
    def row(t: Tally) -> tuple[Any, ...]:
        times = t.responses
        return (t.created, len(times), nearest_rank(times, 1, 2), nearest_rank(times, 9, 10))

    return Table(
        "first_response",
        ("by", "group", "conversations", "answered", "median_seconds", "p90_seconds"),
        _rows(await _tallies_once(session, query), lambda t: t.created, row),
        applied(query.filters, FILTERS),
    )


async def resolution(session: AsyncSession, query: KpiQuery) -> Table:
    def row(t: Tally) -> tuple[Any, ...]:
        times = t.resolutions
        return (t.closed, nearest_rank(times, 1, 2), nearest_rank(times, 9, 10))

    return Table(
        "resolution",
        ("by", "group", "closed", "median_seconds", "p90_seconds"),
        _rows(await _tallies_once(session, query), lambda t: t.closed, row),
        applied(query.filters, FILTERS),
    )


async def sla(session: AsyncSession, query: KpiQuery) -> Table:
    def row(t: Tally) -> tuple[Any, ...]:
        met, missed, pending = t.outcomes
        return (t.with_target, met, missed, pending, share(met, met + missed))

    # only groups with a target, the total too (no row rather than one of zeros)
    rows = _rows(await _tallies_once(session, query), lambda t: t.with_target, row)
    return Table(
        "sla",
        ("by", "group", "with_target", "met", "missed", "pending", "attainment"),
        [r for r in rows if r[2]],
        applied(query.filters, FILTERS),
    )
