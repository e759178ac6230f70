"""The data-quality rollup (`kpi_customers`) equals what the raw tables say, after every change.

Triggers keep it in the changing transaction (migration 0012); `hub.kpis.rollup.recompute`
states the same rows from the raw tables. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.context import Hub
from hub.kpis.areas import compute_figure
from hub.kpis.rollup import kept_rows, recomputed_rows, rows_differ
from hub.models import Customer, Erasure, Identity
from tests import kpi_truth as truth
from tests.kpi_history import generate, query, store

Change = Callable[[AsyncSession], Awaitable[Any]]


async def _differences(hub: Hub) -> list[tuple[Any, ...]]:
    async with hub.sessions() as session:
        return await rows_differ(session)


async def _apply(hub: Hub, change: Change) -> None:
    async with hub.work() as work:
        await change(work.session)
        await work.session.flush()


async def test_the_rollup_of_a_generated_history_holds_each_counted_customer_as_the_raw_tables_say(
    hub: Hub,
):
    history = generate(customers=30, conversations=10, contacts=10)
    await store(hub, history)

    async with hub.sessions() as session:
        kept, recomputed = await kept_rows(session), await recomputed_rows(session)
    counted = truth.counted_customers(history)
    assert kept == recomputed
    assert [row[0] for row in kept] == [c["id"] for c in counted]
    kinds = {(i["customer_id"], i["kind"]) for i in history.identities}
    assert [(row[2], row[3]) for row in kept] == [
        ((c["id"], "email") in kinds, (c["id"], "phone") in kinds) for c in counted
    ]
    assert [row[0] for row in kept if row[4]] == [1, 3]  # max.muster+shop@, m.a.x.muster@


def _add(customer_id: int, kind: str, value: str) -> Change:
    async def change(session: AsyncSession) -> None:
        session.add(Identity(customer_id=customer_id, kind=kind, value=value))

    return change


def _run(statement: Any) -> Change:
    async def change(session: AsyncSession) -> None:
        await session.execute(statement)

    return change


def _erase(customer_id: int) -> Change:
    async def change(session: AsyncSession) -> None:
        session.add(Erasure(customer_id=customer_id, counts={}))

    return change


def _new_customer(name: str) -> Change:
    async def change(session: AsyncSession) -> None:
        session.add(Customer(id=900, name=name, company="Acme GmbH", tier="B"))

    return change


# Every kind of change the rollup follows, in an order where each one matters.
CHANGES: list[tuple[str, Change]] = [
    ("a new customer", _new_customer("  Ida Neu ")),
    ("their first e-mail address", _add(900, "email", "Ida.Neu@mail.test")),
    ("a phone number", _add(900, "phone", "+4915199999999")),
    ("another e-mail address", _add(900, "email", "ida@mail.test")),
    (
        "the marked address deleted",
        _run(delete(Identity).where(Identity.value == "Ida.Neu@mail.test")),
    ),
    (
        "the last e-mail address deleted",
        _run(delete(Identity).where(Identity.value == "ida@mail.test")),
    ),
    ("a new tier", _run(update(Customer).where(Customer.id == 900).values(tier=None))),
    (
        "a new name and company",
        _run(update(Customer).where(Customer.id == 900).values(name="Max Muster", company=None)),
    ),
    (
        "an address moved to another customer",
        _run(update(Identity).where(Identity.value == "+4915199999999").values(customer_id=2)),
    ),
    (
        "merged into another",
        _run(update(Customer).where(Customer.id == 900).values(merged_into_id=1)),
    ),
    ("unmerged", _run(update(Customer).where(Customer.id == 900).values(merged_into_id=None))),
    ("erased", _erase(900)),
    ("the erasure undone", _run(delete(Erasure).where(Erasure.customer_id == 900))),
    ("deleted", _run(delete(Customer).where(Customer.id == 900))),
]


async def test_every_kind_of_change_keeps_the_rollup_equal_to_the_raw_tables(hub: Hub):
    await store(hub, generate(customers=12, conversations=5, contacts=5))
    assert await _differences(hub) == []

    for name, change in CHANGES:
        await _apply(hub, change)
        assert await _differences(hub) == [], name


async def test_the_rollup_changes_with_the_transaction_that_changes_a_customer(hub: Hub):
    await store(hub, generate(customers=12, conversations=5, contacts=5))
    before = (await compute_figure(hub, "quality", "data_quality", query())).records()[0]

    async with hub.work() as work:
        await _new_customer("Anna Berg")(work.session)
        await work.session.flush()
        mine = [row[0] for row in await kept_rows(work.session)]
        async with hub.sessions() as other:
            theirs = [row[0] for row in await kept_rows(other)]
        assert 900 in mine and 900 not in theirs  # written with the change, not committed yet
    after = (await compute_figure(hub, "quality", "data_quality", query())).records()[0]

    assert after["customers"] == before["customers"] + 1
    assert after["without_email"] == before["without_email"] + 1
    assert after["without_phone"] == before["without_phone"] + 1


async def test_two_transactions_removing_a_customers_two_addresses_leave_them_without_e_mail(
    hub: Hub,
):
    """Each refresh sees the other's commit: the second waits for the first (PostgreSQL: the
    customer's row lock the refresh takes first; SQLite: its one writer at a time)."""
    await _apply(hub, _new_customer("Ida Neu"))
    await _apply(hub, _add(900, "email", "ida@mail.test"))
    await _apply(hub, _add(900, "email", "ida@work.test"))

    async with hub.sessions() as first, hub.sessions() as second:
        async with first.begin():
            await first.execute(delete(Identity).where(Identity.value == "ida@mail.test"))
            await second.begin()
            waiting = asyncio.create_task(
                second.execute(delete(Identity).where(Identity.value == "ida@work.test"))
            )
            await asyncio.sleep(0.2)
            assert not waiting.done()
        await waiting
        await second.commit()

    async with hub.sessions() as session:
        kept = {row[0]: row for row in await kept_rows(session)}
    assert kept[900][2] is False  # has_email
    assert await _differences(hub) == []
