"""The data-quality rollup (`kpi_customers`): what it holds, recomputed from the raw tables.

Database triggers (migration 0012) keep one row per counted customer (not
merged away, not erased) current in the transaction of every change to a
customer, their identities or an erasure, so the quality figures read one
narrow row per customer instead of joining identities and erasures.
`recompute` states the same rows as one SELECT over the raw tables: the tests
compare the two after every kind of change, and `rows_differ` lets an
operator (or a benchmark) check a live database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, String, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.models import Customer, Erasure, Identity, KpiCustomer

COLUMNS = (
    "id",
    "tier",
    "has_email",
    "has_phone",
    "marked_email",
    "name_key",
    "company_key",
)


def is_marked(value: Any) -> ColumnElement[bool]:
    """An address with a dot or a +tag in its local part, or a capital: the only kind that
    may reach the same mailbox as a different address once those are ignored."""
    return or_(value.like("%.%@%"), value.like("%+%@%"), value != func.lower(value))


def _has(kind: str, *where: Any) -> ColumnElement[bool]:
    return exists().where(Identity.customer_id == Customer.id, Identity.kind == kind, *where)


def recompute() -> Select[Any]:
    """The rollup's rows as the raw tables say they should be, in customer order."""
    erased = exists().where(Erasure.customer_id == Customer.id)
    return (
        select(
            Customer.id,
            Customer.tier,
            _has("email"),
            _has("phone"),
            _has("email", is_marked(Identity.value)),
            func.lower(func.trim(Customer.name)),
            func.lower(func.trim(func.coalesce(Customer.company, literal("", String)))),
        )
        .where(Customer.merged_into_id.is_(None), ~erased)
        .order_by(Customer.id)
    )


async def kept_rows(session: AsyncSession) -> list[tuple[Any, ...]]:
    statement = select(*(getattr(KpiCustomer, name) for name in COLUMNS))
    return [tuple(row) for row in await session.execute(statement.order_by(KpiCustomer.id))]


async def recomputed_rows(session: AsyncSession) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await session.execute(recompute())]


async def rows_differ(session: AsyncSession) -> list[tuple[Any, ...]]:
    """The rows in which the kept rollup and the recomputed one differ (both sides given)."""
    kept, recomputed = set(await kept_rows(session)), set(await recomputed_rows(session))
    return sorted(kept ^ recomputed, key=lambda row: (row[0], row in kept))
