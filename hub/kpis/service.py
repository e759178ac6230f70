"""Service figures: how fast requests are answered and closed, and where they pile up.

    first_response,  the period's conversations: answer and closing times,
    resolution, sla  SLA attainment (`hub.kpis.conversations`)
    open_by_queue,   conversations open now, by how long ago they came in
    open_by_assignee
    complaints       opened and resolved in the period, open now, and the
                     median and p90 of opened → resolved for those resolved
    open_complaints  complaints open now, by age
    contacts         inbound contacts (history entries from the customer) in
                     the period: how many, from how many customers
    contacts_per_customer  how many customers contacted us once, twice, ...
    top_contacts     the customers who contacted us most, per channel

The first three are broken down by channel, tier and team (the queue), with
the total as `by = all`. Customers are joined only where the tier is asked for
(a breakdown or the tier filter): the other figures then read their own index.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import (
    String,
    and_,
    case,
    cast,
    func,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from hub.kpis import conversations
from hub.kpis.query import KpiQuery
from hub.kpis.sql import (
    AGE_NAMES,
    age_bucket,
    applied,
    constant,
    dialect_of,
    filtered,
    in_period,
    once,
    rank_stats,
    seconds_between,
    tier_matches,
)
from hub.kpis.tables import Table
from hub.models import Agent, Complaint, Conversation, Customer, Interaction

CONVERSATION_FILTERS = ("channel", "tier", "team")
TOP_CUSTOMERS = 10
# How many contacts a customer made: (label, fewest, most; None: no limit).
CONTACT_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-5", 3, 5),
    ("6-10", 6, 10),
    ("11+", 11, None),
)


def _conversation_columns() -> dict[str, Any]:
    return {
        "channel": Conversation.channel,
        "tier": Customer.tier,
        "team": Conversation.queue,
    }


def _open_conversations(query: KpiQuery, key: Any) -> Any:
    statement = select(
        key, age_bucket(Conversation.created_at, query.now).label("age"), func.count()
    ).where(Conversation.status == "open")
    if query.filters.tier:
        statement = statement.join(Customer, Customer.id == Conversation.customer_id)
    return filtered(statement, query.filters, _conversation_columns()).group_by(key.name, "age")


def _pivot(pairs: list[Any]) -> dict[Any, Counter[str]]:
    """(key, age, count) rows into one age counter per key."""
    pivot: dict[Any, Counter[str]] = {}
    for key, age, count in pairs:
        pivot.setdefault(key, Counter())[age] += count
    return pivot


async def open_by_queue(session: AsyncSession, query: KpiQuery) -> Table:
    queue = func.coalesce(Conversation.queue, constant("none")).label("queue")
    pivot = _pivot((await session.execute(_open_conversations(query, queue))).all())
    rows = [
        (name, *(ages[age] for age in AGE_NAMES), sum(ages.values()))
        for name, ages in sorted(pivot.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    ]
    return Table(
        "open_by_queue",
        ("queue", *AGE_NAMES, "total"),
        rows,
        applied(query.filters, CONVERSATION_FILTERS),
    )


async def open_by_assignee(session: AsyncSession, query: KpiQuery) -> Table:
    pivot = _pivot(
        (await session.execute(_open_conversations(query, Conversation.assignee_id))).all()
    )
    names = dict((await session.execute(select(Agent.id, Agent.name))).all())
    rows = [
        (
            agent_id,
            names.get(agent_id) if agent_id else None,
            *(ages[age] for age in AGE_NAMES),
            sum(ages.values()),
        )
        for agent_id, ages in sorted(
            pivot.items(), key=lambda item: (-sum(item[1].values()), item[0] or 0)
        )
    ]
    return Table(
        "open_by_assignee",
        ("agent_id", "agent", *AGE_NAMES, "total"),
        rows,
        applied(query.filters, CONVERSATION_FILTERS),
    )


def _complaints(query: KpiQuery, *columns: Any) -> Any:
    statement = select(*columns).select_from(Complaint)
    if query.filters.tier:
        statement = statement.join(Customer, Customer.id == Complaint.customer_id).where(
            tier_matches(query.filters.tier)
        )
    return statement


async def complaints(session: AsyncSession, query: KpiQuery) -> Table:
    period = query.period
    opened = await session.scalar(
        _complaints(query, func.count()).where(in_period(Complaint.opened_at, period))
    )
    open_now = await session.scalar(
        _complaints(query, func.count()).where(Complaint.status != "resolved")
    )
    seconds = seconds_between(dialect_of(session), Complaint.resolved_at, Complaint.opened_at)
    rows = (
        _complaints(query, constant("all").label("all"), seconds.label("value"))
        .where(Complaint.status == "resolved", in_period(Complaint.resolved_at, period))
        .subquery()
    )
    stats = await rank_stats(session, rows, ("all",))
    _by, _group, _rows, resolved, median, p90 = (
        stats[0] if stats else ("all", "all", 0, 0, None, None)
    )
    return Table(
        "complaints",
        ("opened", "resolved", "open_now", "median_seconds", "p90_seconds"),
        [(opened or 0, resolved or 0, open_now or 0, median, p90)],
        ("tier",) if query.filters.tier else (),
    )


async def open_complaints(session: AsyncSession, query: KpiQuery) -> Table:
    age = age_bucket(Complaint.opened_at, query.now).label("age")
    statement = _complaints(query, age, func.count()).where(Complaint.status != "resolved")
    counts = dict((await session.execute(statement.group_by("age"))).all())
    return Table(
        "open_complaints",
        ("age", "complaints"),
        [(name, counts.get(name, 0)) for name in AGE_NAMES],
        ("tier",) if query.filters.tier else (),
    )


def inbound_contacts(query: KpiQuery, *columns: Any) -> Any:
    """The period's inbound contacts; joins customers only when the tier filter needs them."""
    statement = (
        select(*columns)
        .select_from(Interaction)
        .where(Interaction.direction == "inbound", in_period(Interaction.occurred_at, query.period))
    )
    if query.filters.channel:
        statement = statement.where(Interaction.channel == query.filters.channel)
    if query.filters.tier:
        statement = statement.join(Customer, Customer.id == Interaction.customer_id).where(
            tier_matches(query.filters.tier)
        )
    return statement


def _contact_filters(query: KpiQuery) -> tuple[str, ...]:
    return applied(query.filters, ("channel", "tier"))


async def _contact_counts(session: AsyncSession, query: KpiQuery) -> dict[str, Any]:
    """One pass over the period's contacts grouped by customer: per bucket of contacts per
    customer, how many customers and contacts; and the customers who wrote most."""
    per_customer = (
        inbound_contacts(
            query, Interaction.customer_id.label("customer_id"), func.count().label("n")
        )
        .group_by(Interaction.customer_id)
        .cte("per_customer")
    )
    n = per_customer.c.n
    limits = [(label, low, high) for label, low, high in CONTACT_BUCKETS if high is not None]
    bucket = case(
        *[(and_(n >= low, n <= high), constant(label)) for label, low, high in limits],
        else_=constant(CONTACT_BUCKETS[-1][0]),
    ).label("key")
    buckets = select(constant("bucket").label("kind"), bucket, func.count(), func.sum(n))
    top = (
        select(per_customer.c.customer_id, n)
        .order_by(n.desc(), per_customer.c.customer_id)
        .limit(TOP_CUSTOMERS)
        .subquery()
    )
    leaders = select(constant("top"), cast(top.c.customer_id, String), top.c.n, top.c.n)
    counts: dict[str, Any] = {"buckets": {}, "leaders": []}
    for kind, key, first, second in await session.execute(
        union_all(buckets.group_by("key"), leaders)
    ):
        if kind == "bucket":
            counts["buckets"][key] = (first, int(second or 0))
        else:
            counts["leaders"].append((int(key), first))
    counts["leaders"].sort(key=lambda leader: (-leader[1], leader[0]))
    return counts


async def _contacts_once(session: AsyncSession, query: KpiQuery) -> dict[str, Any]:
    return await once(session, ("contacts", query), lambda: _contact_counts(session, query))


async def contacts(session: AsyncSession, query: KpiQuery) -> Table:
    buckets = (await _contacts_once(session, query))["buckets"]
    customers = sum(count for count, _contacts in buckets.values())
    total = sum(contacts for _count, contacts in buckets.values())
    average = round(total / customers, 2) if customers else None
    return Table(
        "contacts",
        ("contacts", "customers", "contacts_per_customer"),
        [(total, customers, average)],
        _contact_filters(query),
    )


async def contacts_per_customer(session: AsyncSession, query: KpiQuery) -> Table:
    buckets = (await _contacts_once(session, query))["buckets"]
    return Table(
        "contacts_per_customer",
        ("contacts", "customers"),
        [(label, buckets.get(label, (0, 0))[0]) for label, _low, _high in CONTACT_BUCKETS],
        _contact_filters(query),
    )


async def top_contacts(session: AsyncSession, query: KpiQuery) -> Table:
    leaders = (await _contacts_once(session, query))["leaders"]
    ids = [customer_id for customer_id, _n in leaders]
    split = (
        inbound_contacts(query, Interaction.customer_id, Interaction.channel, func.count())
        .where(Interaction.customer_id.in_(ids))
        .group_by(Interaction.customer_id, Interaction.channel)
    )
    channels: dict[int, Counter[str]] = {}
    for customer_id, channel, n in (await session.execute(split)).all() if ids else []:
        channels.setdefault(customer_id, Counter())[channel] += n
    names = (
        dict(
            (
                await session.execute(
                    select(Customer.id, Customer.name).where(Customer.id.in_(ids))
                )
            ).all()
        )
        if ids
        else {}
    )
    seen = sorted({channel for counter in channels.values() for channel in counter})
    rows = [
        (
            customer_id,
            names.get(customer_id),
            n,
            *(channels.get(customer_id, Counter())[c] for c in seen),
        )
        for customer_id, n in leaders
    ]
    return Table(
        "top_contacts",
        ("customer_id", "customer", "contacts", *seen),
        rows,
        _contact_filters(query),
    )


FIGURES = {
    "first_response": conversations.first_response,
    "resolution": conversations.resolution,
    "sla": conversations.sla,
    "open_by_queue": open_by_queue,
    "open_by_assignee": open_by_assignee,
    "complaints": complaints,
    "open_complaints": open_complaints,
    "contacts": contacts,
    "contacts_per_customer": contacts_per_customer,
    "top_contacts": top_contacts,
}
