"""The gate for many recipients at once against a bare SELECT of the same recipients.

Fills 100,000 customers (`--recipients`) with one e-mail address each, a tenth
of them blocked for mixed reasons (`bench.mixed_recipients`), and times, in
the same run and interleaved,

- the baseline: one bare SELECT of the recipients' identities
  (customer_id, value), the customer ids bound as one parameter the way the
  gate binds them (a PostgreSQL array, a SQLite JSON array);
- `check_many()` for every recipient, marketing by default (`--purpose`),
  which exercises every rule.

It prints the minimum and median of each, their ratio and the cost per
recipient, how many recipients the gate stopped for which reason, and a
CHECK line: the blocked set the gate returned, and each recipient's reasons,
must equal the planted ones (the run exits 1 if not). PASS means the gate's
median is within `TARGET` (10x) of the baseline's.

PostgreSQL plans a prepared statement afresh for its first five executions
and may then switch for good to a generic plan, which can be much slower for
a parameter of 100,000 values. The default warm-up (`--warmup 5`, after the
check and the statement count) gets past the switch, so the timed rounds see
the plan a long-running hub uses; the samples are printed in order, so a
drift shows.

Run from the repository root::

    python -m bench.gate                          # SQLite in a temporary file
    python -m bench.gate --postgres               # a scratch database on 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from bench.harness import (
    Case,
    Summary,
    add_database_arguments,
    count_statements,
    measure,
    scratch_database,
    summarise,
)
from bench.history import server_version
from bench.mixed_recipients import PLANTS, Planted, fill
from hub.context import Hub
from hub.db import migrate
from hub.gate import PURPOSES, Decision, Policy, Recipient, check_many, in_bound_array
from hub.models import Identity
from hub.settings import load_settings

TARGET = 10.0
BASELINE = "bare SELECT of the identities"
GATE = "check_many"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gate", description=__doc__)
    add_database_arguments(parser)
    parser.add_argument("--recipients", type=int, default=100_000, help="customers to check")
    parser.add_argument("--repeat", type=int, default=5, help="timed samples per case")
    parser.add_argument(
        "--warmup", type=int, default=5, help="untimed rounds first (past PostgreSQL's plan switch)"
    )
    parser.add_argument("--purpose", choices=PURPOSES, default="marketing")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    return parser.parse_args(argv)


def identities_of(recipients: list[Recipient], dialect: str) -> Select[Any]:
    """The baseline: the recipients' identities, the customer ids bound as the gate binds them."""
    customers = sorted({r.customer_id for r in recipients if r.customer_id is not None})
    return select(Identity.customer_id, Identity.value).where(
        in_bound_array(Identity.customer_id, customers, dialect, "customers")
    )


def bare(recipients: list[Recipient], dialect: str) -> Callable[[AsyncSession], Awaitable[Any]]:
    async def run(session: AsyncSession) -> list[Any]:
        statement = identities_of(recipients, dialect)
        return list((await session.execute(statement)).all())

    return run


def gate(recipients: list[Recipient], purpose: str) -> Callable[[AsyncSession], Awaitable[Any]]:
    async def run(session: AsyncSession) -> list[Decision]:
        return await check_many(session, recipients, purpose, Policy())

    return run


def build_cases(recipients: list[Recipient], purpose: str, dialect: str) -> list[Case]:
    baseline = Case(BASELINE, bare(recipients, dialect))
    return [baseline, Case(GATE, gate(recipients, purpose), BASELINE)]


def print_baseline(hub: Hub, recipients: list[Recipient]) -> None:
    statement = identities_of(recipients, hub.engine.dialect.name)
    sql = " ".join(str(statement.compile(dialect=hub.engine.dialect)).split())
    print(f"baseline ({BASELINE}, all {len(recipients):,} rows fetched): {sql}")
    print("  with the customer ids bound as one parameter, as check_many binds them")


async def check_decisions(hub: Hub, planted: Planted, purpose: str) -> bool:
    """Print the gate's reasons by count and whether they are exactly the planted ones."""
    async with hub.sessions() as session:
        decisions = await gate(planted.recipients, purpose)(session)
    given = {
        r.customer_id: frozenset(d.reasons)
        for r, d in zip(planted.recipients, decisions, strict=True)
        if not d.allowed
    }
    print_reasons(given, len(planted.recipients), purpose)
    return print_check(planted.expected(purpose), given, planted)


def print_reasons(given: dict[int | None, frozenset[str]], total: int, purpose: str) -> None:
    share = len(given) / total
    print(f"blocked for {purpose}: {len(given):,} of {total:,} recipients ({share:.1%})")
    counts = Counter(reason for reasons in given.values() for reason in reasons)
    for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {reason:<22} {count:>7,}")


def print_check(
    expected: dict[int, frozenset[str]], given: dict[int | None, frozenset[str]], planted: Planted
) -> bool:
    same_set = expected.keys() == given.keys()
    wrong = [cid for cid in expected.keys() | given.keys() if expected.get(cid) != given.get(cid)]
    verdict = "OK" if same_set and not wrong else "FAIL"
    print(
        f"CHECK {verdict}: planted blocked set ({len(expected):,}) "
        f"{'==' if same_set else '!='} the gate's blocked set ({len(given):,}); "
        f"reasons differ for {len(wrong):,} recipients"
    )
    for cid in sorted(wrong)[:10]:
        print(
            f"  customer {cid} ({planted.plants[cid].name}): planted "
            f"{sorted(expected.get(cid, ()))}, gate {sorted(given.get(cid, ()))}"
        )
    return same_set and not wrong


async def print_statement_counts(hub: Hub, cases: list[Case]) -> None:
    counts = [
        f"{case.name}: {await count_statements(hub.sessions, hub.engine, case.run)}"
        for case in cases
    ]
    print("statements per call: " + "; ".join(counts))


def render_table(samples: dict[str, list[float]], recipients: int) -> list[str]:
    lines = [f"{'case':<29}  {'min ms':>9}  {'median ms':>9}  {'max ms':>9}  {'µs/recipient':>12}"]
    for name, values in samples.items():
        median = statistics.median(values)
        lines.append(
            f"{name:<29}  {min(values) * 1e3:>9.1f}  {median * 1e3:>9.1f}  "
            f"{max(values) * 1e3:>9.1f}  {median / recipients * 1e6:>12.2f}"
        )
    for name, values in samples.items():
        lines.append(f"{name}, samples in order (ms): {' '.join(f'{v * 1e3:.0f}' for v in values)}")
    return lines


def print_verdict(samples: dict[str, list[float]]) -> None:
    ratio = statistics.median(samples[GATE]) / statistics.median(samples[BASELINE])
    best = min(samples[GATE]) / min(samples[BASELINE])
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(
        f"{verdict}: check_many's median is {ratio:.2f}x the baseline's "
        f"(min {best:.2f}x; target: within {TARGET:g}x)"
    )
    gate, base = statistics.median(samples[GATE]), statistics.median(samples[BASELINE])
    summarise(
        Summary(
            "gate for a campaign's recipients (check_many)",
            f"median {gate * 1e3:,.0f} ms",
            f"bare SELECT of their identities {base * 1e3:,.0f} ms",
            ratio,
            f"within {TARGET:g}x (ours)",
            ratio <= TARGET,
        )
    )


async def benchmark(hub: Hub, planted: Planted, arguments: argparse.Namespace) -> bool:
    cases = build_cases(planted.recipients, arguments.purpose, hub.engine.dialect.name)
    correct = await check_decisions(hub, planted, arguments.purpose)
    print_baseline(hub, planted.recipients)
    await print_statement_counts(hub, cases)
    samples = await measure(hub.sessions, cases, arguments.repeat, arguments.warmup)
    print(f"\n{arguments.repeat} samples per case, interleaved, after {arguments.warmup} rounds:")
    print("\n".join(render_table(samples, len(planted.recipients))))
    print_verdict(samples)
    return correct


def describe(arguments: argparse.Namespace, engine_version: str) -> str:
    blocking = sum(plant.share for plant in PLANTS if getattr(plant, arguments.purpose))
    return (
        f"bench.gate on {engine_version}: {arguments.recipients:,} e-mail recipients, "
        f"{blocking:.1%} planted to be stopped for {arguments.purpose}, purpose "
        f"{arguments.purpose}, {Policy()}"
    )


async def run(arguments: argparse.Namespace) -> bool:
    async with scratch_database(arguments.database_url, arguments.postgres) as url:
        await migrate(url)
        hub = Hub.create(load_settings(_env_file=None, database_url=url))
        try:
            print(describe(arguments, await server_version(hub)))
            started = time.perf_counter()
            planted = await fill(hub.engine, arguments.recipients, arguments.seed)
            print(f"filled in {time.perf_counter() - started:.1f} s")
            return await benchmark(hub, planted, arguments)
        finally:
            await hub.close()


def main(argv: list[str] | None = None) -> None:
    if not asyncio.run(run(parse_arguments(argv))):
        raise SystemExit("the gate's decisions differ from the planted ones")


if __name__ == "__main__":
    main()
