"""The customer card and the history pages against the bare indexed SELECT.

Fills one customer with 100,000 interactions across channels over three
years (beside twenty other customers, so the index holds more than one), and
reports p50/p99 of

- the bare SELECT of the card's history rows (`history_query`), the baseline;
- the card (`get_card`), which must stay within 3x of that baseline (p50);
- the first history page and a page deep in the history (`get_history`),
  each beside the bare SELECT of the same page.

Run from the repository root::

    python -m bench.history                       # SQLite in a temporary file
    python -m bench.history --postgres            # a scratch database on 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from bench.big_customer import OTHER_CUSTOMERS, OTHER_ROWS, fill
from bench.harness import (
    Case,
    Figures,
    Run,
    Summary,
    add_database_arguments,
    count_statements,
    explain,
    figures,
    measure,
    render_table,
    scratch_database,
    summarise,
)
from hub.context import Hub
from hub.customers import get_card
from hub.db import migrate
from hub.history import encode_cursor, get_history, history_query
from hub.models import Interaction
from hub.settings import Settings, load_settings

TARGET = 3.0
DEEP_SHARE = 0.9


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database_arguments(parser)
    parser.add_argument("--rows", type=int, default=100_000, help="interactions of the customer")
    parser.add_argument("--repeat", type=int, default=300, help="timed samples per case")
    parser.add_argument("--warmup", type=int, default=30, help="untimed rounds first")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    return parser.parse_args(argv)


def newest_first(customer_id: int) -> Select[Any]:
    return (
        select(Interaction.occurred_at, Interaction.id)
        .where(Interaction.customer_id == customer_id)
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
    )


async def deep_cursor(session: AsyncSession, customer_id: int, position: int) -> str:
    """The cursor a client holds after paging through `position` entries."""
    statement = newest_first(customer_id).offset(position - 1).limit(1)
    row = (await session.execute(statement)).one()
    return encode_cursor(row.occurred_at, row.id)


def bare(customer_id: int, limit: int, before: str | None = None) -> Run:
    async def run(session: AsyncSession) -> list[Any]:
        return list((await session.execute(history_query(customer_id, limit, before))).all())

    return run


def page(customer_id: int, limit: int, before: str | None = None) -> Run:
    async def run(session: AsyncSession) -> Any:
        return await get_history(session, customer_id, limit, before)

    return run


def card(customer_id: int, history_size: int) -> Run:
    async def run(session: AsyncSession) -> dict[str, Any]:
        return await get_card(session, customer_id, history_size)

    return run


def build_cases(settings: Settings, customer_id: int, cursor: str) -> list[Case]:
    """The card and the two pages, each after the bare SELECT it is compared with."""
    card_size, page_size = settings.card_history_size, settings.history_page_size
    card_rows = f"bare SELECT, card rows ({card_size}+1)"
    first_rows = f"bare SELECT, first page ({page_size}+1)"
    deep_rows = f"bare SELECT, deep page ({page_size}+1)"
    return [
        Case(card_rows, bare(customer_id, card_size)),
        Case("card", card(customer_id, card_size), card_rows),
        Case(first_rows, bare(customer_id, page_size)),
        Case("history, first page", page(customer_id, page_size), first_rows),
        Case(deep_rows, bare(customer_id, page_size, cursor)),
        Case("history, deep page", page(customer_id, page_size, cursor), deep_rows),
    ]


async def check_same_rows(hub: Hub, customer_id: int, position: int, cursor: str) -> None:
    """The card and the pages return the rows the bare SELECT and an OFFSET scan do."""
    card_size, page_size = hub.settings.card_history_size, hub.settings.history_page_size
    async with hub.sessions() as session:
        rows = await bare(customer_id, card_size)(session)
        shown = await get_card(session, customer_id, card_size)
        deep = await get_history(session, customer_id, page_size, cursor)
        offset = newest_first(customer_id).offset(position).limit(page_size)
        expected = [row.id for row in await session.execute(offset)]
    if [entry["id"] for entry in shown["history"]] != [row.id for row in rows[:card_size]]:
        raise SystemExit("the card's history differs from the bare SELECT's rows")
    if [entry["id"] for entry in deep.entries] != expected:
        raise SystemExit(f"the deep page is not entries {position + 1} to {position + page_size}")


async def print_plans(hub: Hub, customer_id: int, cursor: str) -> None:
    card_size, page_size = hub.settings.card_history_size, hub.settings.history_page_size
    async with hub.sessions() as session:
        for label, statement in (
            ("card rows", history_query(customer_id, card_size)),
            ("deep page", history_query(customer_id, page_size, cursor)),
        ):
            print(f"plan of the history query, {label}:")
            for line in await explain(session, statement):
                print(f"  {line}")


async def print_statement_counts(hub: Hub, cases: list[Case]) -> None:
    counts = [
        f"{case.name}: {await count_statements(hub.sessions, hub.engine, case.run)}"
        for case in cases
    ]
    print("statements per call: " + "; ".join(counts))


def print_verdict(card_case: Case, results: dict[str, Figures]) -> None:
    """The issue's target, judged on p50: the card within 3x of the bare SELECT."""
    mine, base = results[card_case.name], results[card_case.baseline or ""]
    ratio = mine.p50 / base.p50
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(
        f"{verdict}: the card's p50 is {ratio:.2f}x the bare SELECT of its history rows "
        f"(target: within {TARGET:g}x; p99 ratio {mine.p99 / base.p99:.2f}x)"
    )
    summarise(
        Summary(
            "customer card, a customer with a long history",
            f"p50 {mine.p50:.2f} ms",
            f"bare SELECT of its rows p50 {base.p50:.2f} ms",
            ratio,
            f"within {TARGET:g}x",
            ratio <= TARGET,
        )
    )


async def benchmark(hub: Hub, customer_id: int, arguments: argparse.Namespace) -> None:
    position = int(arguments.rows * DEEP_SHARE)
    async with hub.sessions() as session:
        cursor = await deep_cursor(session, customer_id, position)
    cases = build_cases(hub.settings, customer_id, cursor)
    await check_same_rows(hub, customer_id, position, cursor)
    await print_plans(hub, customer_id, cursor)
    await print_statement_counts(hub, cases)
    samples = await measure(hub.sessions, cases, arguments.repeat, arguments.warmup)
    results = {name: figures(values) for name, values in samples.items()}
    print(f"\n{arguments.repeat} samples per case, interleaved, after {arguments.warmup} rounds:")
    print("\n".join(render_table(cases, results)))
    print_verdict(next(case for case in cases if case.name == "card"), results)


def describe(settings: Settings, arguments: argparse.Namespace, engine_version: str) -> str:
    others = f"{OTHER_CUSTOMERS} other customers with {OTHER_ROWS:,} each"
    return (
        f"bench.history on {engine_version}: one customer with {arguments.rows:,} "
        f"interactions beside {others}; card history {settings.card_history_size}, "
        f"page {settings.history_page_size}"
    )


async def server_version(hub: Hub) -> str:
    async with hub.engine.connect() as connection:
        dialect = connection.dialect
        version = ".".join(str(part) for part in dialect.server_version_info or ())
    return f"{dialect.name} {version}"


async def run(arguments: argparse.Namespace) -> None:
    async with scratch_database(arguments.database_url, arguments.postgres) as url:
        await migrate(url)
        hub = Hub.create(load_settings(_env_file=None, database_url=url))
        try:
            print(describe(hub.settings, arguments, await server_version(hub)))
            started = time.perf_counter()
            customer_id = await fill(hub.engine, arguments.rows, arguments.seed)
            print(f"filled in {time.perf_counter() - started:.1f} s")
            await benchmark(hub, customer_id, arguments)
        finally:
            await hub.close()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_arguments(argv)))


if __name__ == "__main__":
    main()
