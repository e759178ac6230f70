"""Lookup and customer card as the customer base grows: 10,000 and 1,000,000 customers.

Fills a scratch database inside the database engine itself (INSERT ... SELECT
over a generated series: Python would take hours for 10,000,000 rows): each
customer has an e-mail address, a mobile number and `--history-per-customer`
interactions (10 by default) spread over three years across five channels.
It fills `--small-customers` (10,000) first and times, then grows the same
database to `--customers` (1,000,000) and times again, so the growth is
measured on one database in one run. At each size, interleaved, `--repeat`
samples of, for a customer drawn at random each time:

- lookup by phone: `hub.customers.lookup_customer` with the number in national
  notation (`0151 ...`), normalised to E.164 as the API does;
- lookup by e-mail: the same with the address in capitals;
- the customer card: `hub.customers.get_card`;
- the baseline: the bare indexed SELECT of the identity row.

Goals (issue 10): at the large size, lookup p99 under 5 ms and card p99 under
25 ms, each growing less than 1.5x from the small size.

    python -m bench.lookup                              # SQLite, full size
    python -m bench.lookup --postgres
    python -m bench.lookup --customers 100000 --small-customers 1000   # CI-sized
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.harness import (
    Case,
    Figures,
    Summary,
    add_database_arguments,
    figures,
    measure,
    scratch_database,
    summarise,
)
from bench.history import server_version
from hub.context import Hub
from hub.customers import get_card, lookup_customer
from hub.db import migrate
from hub.models import Identity
from hub.settings import load_settings

LOOKUP_P99_MS = 5.0
CARD_P99_MS = 25.0
GROWTH = 1.5
CHUNK = 100_000  # customers per INSERT ... SELECT, so no transaction grows huge


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.lookup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database_arguments(parser)
    parser.add_argument("--customers", type=int, default=1_000_000, help="the large size")
    parser.add_argument("--small-customers", type=int, default=10_000, help="the small size")
    parser.add_argument("--history-per-customer", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1_000, help="samples per case and size")
    parser.add_argument("--warmup", type=int, default=100, help="untimed rounds first")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


# --- filling, inside the engine -------------------------------------------------


def phone(n: int) -> str:
    return f"+49151{n:08d}"


def national(n: int) -> str:
    return f"0151 {n:08d}"


def email(n: int) -> str:
    return f"customer{n}@example.com"


FILL_POSTGRES = (
    """INSERT INTO customers (id, name, tier, tier_manual, revenue, is_prospect, tags,
           created_at, updated_at)
       SELECT n, 'Customer ' || n, (ARRAY['A','B','C'])[1 + n % 3], false, n % 10000, false,
              '[]', now(), now()
       FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n""",
    """INSERT INTO identities (customer_id, kind, value, created_at)
       SELECT n, 'email', 'customer' || n || '@example.com', now()
       FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n
       UNION ALL
       SELECT n, 'phone', '+49151' || lpad(n::text, 8, '0'), now()
       FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n""",
    """INSERT INTO interactions (customer_id, channel, direction, kind, subject, text,
           external_id, meta, occurred_at, created_at)
       SELECT c, (ARRAY['email','phone','sms','webform','chat'])[1 + (c + k) % 5],
              CASE WHEN k % 3 = 0 THEN 'outbound' ELSE 'inbound' END, 'message',
              'Anfrage ' || k, 'Guten Tag, eine Frage zu Auftrag ' || c || '-' || k, NULL, '{}',
              timestamptz '2023-01-01' + ((c * 7919 + k * 104729) % 94608000) * interval '1 second',
              now()
       FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS c,
            generate_series(1, CAST(:per AS integer)) AS k""",
)

FILL_SQLITE = (
    """WITH RECURSIVE s(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM s WHERE n < :last)
       INSERT INTO customers (id, name, tier, tier_manual, revenue, is_prospect, tags,
           created_at, updated_at)
       SELECT n, 'Customer ' || n, substr('ABC', 1 + n % 3, 1), 0, n % 10000, 0, '[]',
              '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000' FROM s""",
    """WITH RECURSIVE s(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM s WHERE n < :last)
       INSERT INTO identities (customer_id, kind, value, created_at)
       SELECT n, 'email', 'customer' || n || '@example.com', '2026-01-01 00:00:00.000000'
       FROM s
       UNION ALL
       SELECT n, 'phone', '+49151' || printf('%08d', n), '2026-01-01 00:00:00.000000' FROM s""",
    """WITH RECURSIVE s(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM s WHERE n < :last),
            k(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM k WHERE k < :per)
       INSERT INTO interactions (customer_id, channel, direction, kind, subject, text,
           external_id, meta, occurred_at, created_at)
       SELECT n, CASE (n + k) % 5 WHEN 0 THEN 'email' WHEN 1 THEN 'phone' WHEN 2 THEN 'sms'
                  WHEN 3 THEN 'webform' ELSE 'chat' END,
              CASE WHEN k % 3 = 0 THEN 'outbound' ELSE 'inbound' END, 'message',
              'Anfrage ' || k, 'Guten Tag, eine Frage zu Auftrag ' || n || '-' || k, NULL, '{}',
              datetime('2023-01-01', '+' || ((n * 7919 + k * 104729) % 94608000) || ' seconds')
                  || '.000000',
              '2026-01-01 00:00:00.000000'
       FROM s, k""",
)


async def fill(engine: AsyncEngine, first: int, last: int, per: int) -> None:
    """Customers `first`..`last`, their identities and history, in chunks."""
    statements = FILL_POSTGRES if engine.dialect.name == "postgresql" else FILL_SQLITE
    for start in range(first, last + 1, CHUNK):
        end = min(last, start + CHUNK - 1)
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement), {"first": start, "last": end, "per": per})
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("ANALYZE"))
            await connection.execute(
                text("SELECT setval('customers_id_seq', (SELECT max(id) FROM customers))")
            )
        else:
            await connection.execute(text("ANALYZE"))


# --- the cases ----------------------------------------------------------------


def cases(region: str, customers: int, history: int, seed: int) -> list[Case]:
    draw = random.Random(seed)

    def pick() -> int:
        return draw.randint(1, customers)

    async def by_phone(session: AsyncSession) -> Any:
        return await lookup_customer(session, region, phone=national(pick()))

    async def by_email(session: AsyncSession) -> Any:
        return await lookup_customer(session, region, email=email(pick()).upper())

    async def card(session: AsyncSession) -> Any:
        return await get_card(session, pick(), history)

    async def bare(session: AsyncSession) -> Any:
        statement = select(Identity.customer_id).where(
            Identity.kind == "phone", Identity.value == phone(pick())
        )
        return (await session.execute(statement)).scalar_one()

    return [
        Case("bare SELECT of an identity", bare),
        Case("lookup by phone", by_phone, "bare SELECT of an identity"),
        Case("lookup by e-mail", by_email, "bare SELECT of an identity"),
        Case("customer card", card, "bare SELECT of an identity"),
    ]


async def time_size(hub: Hub, customers: int, arguments: argparse.Namespace) -> dict[str, Figures]:
    chosen = cases(
        hub.settings.default_region, customers, hub.settings.card_history_size, arguments.seed
    )
    samples = await measure(hub.sessions, chosen, arguments.repeat, arguments.warmup)
    results = {name: figures(values) for name, values in samples.items()}
    print(f"\nat {customers:,} customers ({arguments.repeat} samples per case, interleaved):")
    print(f"  {'case':<28}  {'p50 ms':>8}  {'p99 ms':>8}")
    for name, result in results.items():
        print(f"  {name:<28}  {result.p50:>8.3f}  {result.p99:>8.3f}")
    return results


def verdicts(small: dict[str, Figures], large: dict[str, Figures], sizes: str) -> None:
    print()
    for name, limit in (
        ("lookup by phone", LOOKUP_P99_MS),
        ("lookup by e-mail", LOOKUP_P99_MS),
        ("customer card", CARD_P99_MS),
    ):
        growth = large[name].p99 / small[name].p99
        passed = large[name].p99 < limit and growth < GROWTH
        summarise(
            Summary(
                f"{name} at {sizes} customers",
                f"p99 {large[name].p99:.2f} ms (large)",
                f"p99 {small[name].p99:.2f} ms (small); bare SELECT "
                f"{large['bare SELECT of an identity'].p99:.2f} ms",
                growth,
                f"p99 < {limit:g} ms, growth < {GROWTH:g}x",
                passed,
            )
        )


async def run(arguments: argparse.Namespace) -> None:
    async with scratch_database(arguments.database_url, arguments.postgres) as url:
        await migrate(url)
        hub = Hub.create(load_settings(_env_file=None, database_url=url))
        try:
            per = arguments.history_per_customer
            print(
                f"bench.lookup on {await server_version(hub)}: {arguments.small_customers:,} "
                f"then {arguments.customers:,} customers, {per} history entries each"
            )
            started = time.perf_counter()
            await fill(hub.engine, 1, arguments.small_customers, per)
            print(f"filled {arguments.small_customers:,} in {time.perf_counter() - started:.0f} s")
            small = await time_size(hub, arguments.small_customers, arguments)
            started = time.perf_counter()
            await fill(hub.engine, arguments.small_customers + 1, arguments.customers, per)
            print(f"grew to {arguments.customers:,} in {time.perf_counter() - started:.0f} s")
            large = await time_size(hub, arguments.customers, arguments)
            sizes = f"{arguments.small_customers:,} → {arguments.customers:,}"
            verdicts(small, large, sizes)
        finally:
            await hub.close()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_arguments(argv)))


if __name__ == "__main__":
    main()
