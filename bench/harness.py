"""What the benchmarks share: a scratch database, interleaved timing, the report.

Timing rules, the same for an operation and its baseline:

- every sample runs in a fresh session, so the identity map is empty, whose
  connection and transaction are already open when the clock starts: the pool
  checkout, SQLite's BEGIN IMMEDIATE and asyncpg's BEGIN (sent lazily with the
  first statement) are outside it, and only the work itself is timed;
- the cases run interleaved, in a new random order every round, after a
  warm-up, so machine noise and cache state hit all of them alike;
- a case with a baseline is reported as the ratio of its p50 and p99 to the
  baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import ClauseElement, Executable, event, literal, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from hub.db import SessionFactory
from hub.settings import parse_database_url

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"

Run = Callable[[AsyncSession], Awaitable[object]]
PRIMER = select(literal(1))


@dataclass(frozen=True, slots=True)
class Case:
    """One timed operation; `baseline` names the case it is compared with."""

    name: str
    run: Run
    baseline: str | None = None


@dataclass(frozen=True, slots=True)
class Figures:
    p50: float
    p99: float


@asynccontextmanager
async def scratch_database(database_url: str | None, postgres: bool) -> AsyncIterator[str]:
    """A database URL to fill: a temporary SQLite file, a new PostgreSQL database, or as given.

    With `postgres`, `database_url` names the server (any database on it) and
    the benchmark creates `omnihub_bench_<random>` there and drops it after.
    """
    if postgres:
        async with _postgres_database(parse_database_url(database_url or DEFAULT_POSTGRES)) as url:
            yield url
    elif database_url is not None:
        yield parse_database_url(database_url).render_as_string(hide_password=False)
    else:
        with tempfile.TemporaryDirectory(prefix="omnihub-bench-") as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"


@asynccontextmanager
async def _postgres_database(server: URL) -> AsyncIterator[str]:
    name = f"omnihub_bench_{uuid.uuid4().hex[:10]}"
    await _admin(server, f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(server: URL, sql: str) -> None:
    dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def measure(
    sessions: SessionFactory, cases: list[Case], repeat: int, warmup: int, seed: int = 1
) -> dict[str, list[float]]:
    """Seconds per sample of every case, `repeat` rounds after `warmup` discarded ones."""
    shuffler = random.Random(seed)
    samples: dict[str, list[float]] = {case.name: [] for case in cases}
    for round_number in range(warmup + repeat):
        order = shuffler.sample(cases, len(cases))
        for case in order:
            elapsed = await time_once(sessions, case.run)
            if round_number >= warmup:
                samples[case.name].append(elapsed)
    return samples


async def time_once(sessions: SessionFactory, run: Run) -> float:
    async with sessions() as session:
        await open_transaction(session)
        start = time.perf_counter()
        await run(session)
        return time.perf_counter() - start


def figures(samples: list[float]) -> Figures:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return Figures(p50=cuts[49] * 1000, p99=cuts[98] * 1000)


def render_table(cases: list[Case], results: dict[str, Figures]) -> list[str]:
    width = max(len(case.name) for case in cases)
    lines = [f"{'case':<{width}}  {'p50 ms':>8}  {'p99 ms':>8}  {'p50 x':>7}  {'p99 x':>7}"]
    for case in cases:
        mine = results[case.name]
        row = f"{case.name:<{width}}  {mine.p50:>8.3f}  {mine.p99:>8.3f}"
        if case.baseline is not None:
            base = results[case.baseline]
            row += f"  {mine.p50 / base.p50:>6.2f}x  {mine.p99 / base.p99:>6.2f}x"
            row += f"  of {case.baseline}"
        lines.append(row)
    return lines


@contextmanager
def counting_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Collect the SQL of every statement the engine sends while the block runs."""
    sent: list[str] = []

    def collect(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", collect)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", collect)


async def open_transaction(session: AsyncSession) -> None:
    """Check out a connection and begin, so that neither is timed."""
    await session.execute(PRIMER)


async def count_statements(sessions: SessionFactory, engine: AsyncEngine, run: Run) -> int:
    async with sessions() as session:
        await open_transaction(session)
        with counting_statements(engine) as sent:
            await run(session)
    return len(sent)


class Explain(Executable, ClauseElement):
    """EXPLAIN QUERY PLAN (SQLite) or EXPLAIN ANALYZE (PostgreSQL) of a statement."""

    inherit_cache = False

    def __init__(self, statement: Executable) -> None:
        self.statement = statement


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    sqlite = compiler.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
    return prefix + compiler.process(element.statement, **kw)


async def explain(session: AsyncSession, statement: Executable) -> list[str]:
    """The plan, one line per step; SQLite's rows give their `detail` column."""
    rows = (await session.execute(Explain(statement))).all()
    return [str(row[-1]) for row in rows]


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """`--database-url` and `--postgres`, the same in every benchmark."""
    parser.add_argument(
        "--database-url",
        help="database to fill (default: a new SQLite file in a temporary folder); "
        "with --postgres, the server to create a scratch database on",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="create omnihub_bench_<random> on the PostgreSQL server and drop it after "
        "(default server postgresql+asyncpg://postgres@127.0.0.1:5432/postgres)",
    )


# --- the suite's summary ------------------------------------------------------

SUMMARY_ENV = "OMNIHUB_BENCH_SUMMARY"


@dataclass(frozen=True, slots=True)
class Summary:
    """One benchmark's line in `python -m bench`'s table.

    `ratio` is figure / baseline in the direction the goal is stated (for a
    rate: figure's rate over the baseline's; for a time: figure's time over
    the baseline's); `passed` is None when the benchmark states no goal.
    """

    scenario: str
    figure: str
    baseline: str
    ratio: float
    goal: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        return "-" if self.passed is None else "PASS" if self.passed else "FAIL"


def summarise(summary: Summary) -> None:
    """Print the benchmark's summary line; under `python -m bench`, hand it to the suite too."""
    print(
        f"SUMMARY {summary.verdict}: {summary.scenario}: {summary.figure} "
        f"beside {summary.baseline} = {summary.ratio:.3g}x (goal: {summary.goal})"
    )
    target = os.environ.get(SUMMARY_ENV)
    if target:
        with Path(target).open("a", encoding="utf-8") as file:
            file.write(json.dumps(asdict(summary)) + "\n")
