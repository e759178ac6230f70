"""The figures dashboard on a hub with 10,000,000 history entries, beside a bare COUNT(*).

Fills a scratch database inside the engine (INSERT ... SELECT over a
generated series on PostgreSQL, a recursive CTE on SQLite): `--history`
interactions (10,000,000) over two years, and in proportion one customer per
100 entries, a conversation per 5, a complaint per 200, 50 agents with eight
presence changes a day each, 24 monthly campaigns of 5,000 messages, blocks
and consents. The interactions' secondary indexes are built after the fill,
as any bulk load does; the data-quality rollup (`kpi_customers`) is kept by
its triggers while customers and identities are inserted, as in production.
Then, interleaved in random order, `--repeat` samples of every figure of the
dashboard (`hub.kpis`, the last 30 days, no filter, each alone in a fresh
session), of the whole dashboard (every figure, in the parts of
`hub.kpis.areas.PARTS`, each part in a session of its own, side by side, as
`/console/kpis` computes them), and of the baseline, a bare
`SELECT count(*) FROM interactions`.

Goal (issue 12): the whole dashboard's p50 under one second at 10,000,000
history entries; its ratio to the bare COUNT(*) is reported beside it. A CHECK
line proves the rollup the quality figures read equal to its recomputation
from the raw tables (`hub.kpis.rollup`), at full size (exit 1 if not).

    python -m bench.kpis                        # SQLite, full size
    python -m bench.kpis --postgres
    python -m bench.kpis --history 200000       # CI-sized
    python -m bench.kpis --database-url URL --filled   # time again on a database filled before
"""

# The fill's SQL is assembled from this module's own constants (no input reaches it):
# ruff: noqa: S608

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.harness import (
    Case,
    Summary,
    add_database_arguments,
    explain,
    figures,
    measure,
    render_table,
    scratch_database,
    summarise,
)
from bench.history import server_version
from hub.context import Hub
from hub.db import migrate
from hub.kpis.areas import AREAS, compute_areas, prepare
from hub.kpis.query import Filters, KpiQuery, Period
from hub.kpis.rollup import kept_rows, rows_differ
from hub.kpis.service import inbound_contacts
from hub.models import Interaction
from hub.settings import load_settings

GOAL_MS = 1000.0
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAYS = 730
START = NOW - timedelta(days=DAYS)
SPAN = (DAYS - 5) * 86400  # conversations close within 5 days, so none closes after NOW
CHUNK = 1_000_000
AGENTS = 50
CAMPAIGNS = 24
PER_CAMPAIGN = 5_000
CHANNELS = ("email", "sms", "voice", "webform", "chat")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kpis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database_arguments(parser)
    parser.add_argument("--history", type=int, default=10_000_000, help="history entries")
    parser.add_argument("--repeat", type=int, default=20, help="samples per case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument(
        "--filled",
        action="store_true",
        help="the database named by --database-url was filled by an earlier run: time only",
    )
    return parser.parse_args(argv)


# --- filling, inside the engine -------------------------------------------------


class Dialect:
    """The few spellings that differ: the number series, times, and the literal now."""

    def __init__(self, name: str) -> None:
        self.postgres = name == "postgresql"

    def series(self) -> tuple[str, str]:
        """(prefix, FROM item) of a series n = :first .. :last."""
        if self.postgres:
            return "", "generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS s(n)"
        recursive = (
            "WITH RECURSIVE s(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM s WHERE n < :last) "
        )
        return recursive, "s"

    def at(self, seconds: str) -> str:
        """START plus `seconds` (an SQL integer expression) as a stored time."""
        start = START.strftime("%Y-%m-%d %H:%M:%S")
        if self.postgres:
            return f"(timestamptz '{start}+00' + ({seconds}) * interval '1 second')"
        shift = f"'+' || ({seconds}) || ' seconds'"
        return f"(strftime('%Y-%m-%d %H:%M:%S', '{start}', {shift}) || '.000000')"

    def plus(self, moment: str, seconds: str) -> str:
        if self.postgres:
            return f"({moment} + ({seconds}) * interval '1 second')"
        shift = f"'+' || ({seconds}) || ' seconds'"
        return f"(strftime('%Y-%m-%d %H:%M:%S', {moment}, {shift}) || '.000000')"

    def json(self, expression: str) -> str:
        return f"CAST({expression} AS json)" if self.postgres else expression

    @property
    def now(self) -> str:
        return self.at(str(DAYS * 86400))


def pick(values: tuple[str | int, ...], index: str) -> str:
    """One of `values` by `index` modulo their number (strings quoted, numbers not)."""
    shown = [f"'{value}'" if isinstance(value, str) else str(value) for value in values]
    whens = " ".join(f"WHEN {i} THEN {value}" for i, value in enumerate(shown))
    return f"(CASE ({index}) % {len(values)} {whens} END)"


def statements(d: Dialect) -> dict[str, str]:
    """Per table, one INSERT ... SELECT over n = :first .. :last (and :c customers)."""
    created = d.at("(n * 7919) % " + str(SPAN))
    twin = "(CASE WHEN n % 100 = 0 THEN n - 1 ELSE n END)"  # every 100th customer has a twin
    queues = pick(("standard", "pool", "key_accounts"), "n")
    teams = d.json(f"'[\"' || {queues} || '\"]'")
    reasons = d.json("CASE WHEN n % 5 = 3 THEN '[\"consent:marketing\"]' ELSE '[]' END")
    evidence = d.json("CASE WHEN n % 7 = 0 THEN '{}' ELSE '{\"source\": \"import\"}' END")
    return {
        "agents": f"""INSERT INTO agents (id, email, name, role, language, languages, teams,
                presence, is_active, created_at)
            SELECT n, 'agent' || n || '@bench.test', 'Agent ' || n, 'agent', 'de', '[]',
                {teams},
                'offline',
                n % 10 <> 0, {d.now} FROM {{series}}""",
        "presence_changes": f"""INSERT INTO presence_changes (agent_id, status, at)
            SELECT 1 + n % {AGENTS}, {pick(("online", "away", "offline"), "n / " + str(AGENTS))},
                {d.at(f"(n / {AGENTS}) * 10800")} FROM {{series}}""",
        "customers": f"""INSERT INTO customers (id, name, company, tier, tier_manual, revenue,
                is_prospect, tags, created_at, updated_at)
            SELECT n, 'Kunde ' || {twin}, 'Firma ' || ({twin} % 1000),
                CASE WHEN n % 11 = 0 THEN NULL ELSE {pick(("A", "B", "C"), "n")} END,
                FALSE, n % 10000, FALSE, '[]', {d.now}, {d.now} FROM {{series}}""",
        "identities": f"""INSERT INTO identities (customer_id, kind, value, created_at)
            SELECT n, 'email', 'kunde' || n || '@example.com', {d.now} FROM {{series}}
            WHERE n % 17 <> 0
            UNION ALL
            SELECT n, 'phone', '+49151' || (10000000 + n), {d.now} FROM {{series}}
            WHERE n % 13 <> 0""",
        "conversations": f"""INSERT INTO conversations (id, customer_id, channel, status, queue,
                assignee_id, priority, sla_due_at, created_at, updated_at, first_response_at,
                closed_at)
            SELECT n, 1 + n % :c, {pick(CHANNELS, "n")},
                CASE WHEN n % 500 = 0 THEN 'open' ELSE 'closed' END,
                {pick(("standard", "pool", "key_accounts"), "n")}, 1 + n % {AGENTS}, 0,
                {d.plus(created, "3600 * " + pick((1, 8, 24), "n"))}, {created}, {created},
                CASE WHEN n % 10 = 0 THEN NULL ELSE {d.plus(created, "(n * 31) % 86400")} END,
                CASE WHEN n % 500 = 0 THEN NULL ELSE {d.plus(created, "(n * 53) % 400000")} END
            FROM {{series}}""",
        "interactions": f"""INSERT INTO interactions (customer_id, channel, direction, kind,
                subject, text, meta, occurred_at, created_at)
            SELECT 1 + (n * 7) % :c, {pick(CHANNELS, "n")},
                CASE WHEN n % 3 = 0 THEN 'outbound' ELSE 'inbound' END, 'message', 'Anfrage',
                'Guten Tag, eine Frage zu Auftrag ' || n, '{{}}',
                {d.at("(n * 104729) % " + str(DAYS * 86400))}, {d.now} FROM {{series}}""",
        "complaints": f"""INSERT INTO complaints (customer_id, subject, status, severity,
                opened_at, resolved_at, updated_at)
            SELECT 1 + (n * 13) % :c, 'Reklamation',
                CASE WHEN n % 3 = 0 THEN 'open' ELSE 'resolved' END, 'normal', {created},
                CASE WHEN n % 3 = 0 THEN NULL ELSE {d.plus(created, "(n * 97) % 400000")} END,
                {created} FROM {{series}}""",
        "campaigns": f"""INSERT INTO campaigns (id, name, channel, status, segment, template,
                preview, enqueued_through, enqueue_done, started_at, created_at, updated_at)
            SELECT n, 'Kampagne ' || n, {pick(("email", "sms"), "n")}, 'done', '{{}}', '{{}}',
                '{{}}', 0, TRUE, {d.at("n * 30 * 86400")}, {d.now}, {d.now} FROM {{series}}""",
        "outbox": f"""INSERT INTO outbox (idempotency_key, channel, purpose, recipient,
                customer_id, payload, status, attempts, next_attempt_at, blocked_reasons,
                created_at, sent_at, campaign_id)
            SELECT 'campaign:' || c.id || ':' || n, c.channel, 'marketing',
                'kunde' || (1 + n % :c) || '@example.com', 1 + n % :c, '{{}}',
                {pick(("sent", "sent", "delivered", "blocked", "failed"), "n")}, 1, c.started_at,
                {reasons},
                c.started_at,
                CASE WHEN n % 5 < 3 THEN {d.plus("c.started_at", "n % 3600")} END, c.id
            FROM {{series}} JOIN campaigns c ON c.id = 1 + n % {CAMPAIGNS}""",
        "blocks": f"""INSERT INTO blocks (kind, value, customer_id, reason, scope, created_at)
            SELECT 'email', 'kunde' || (1 + (n * 37) % :c) || '@example.com', NULL,
                {pick(("hard_bounce", "unsubscribe"), "n")}, 'all', {d.now} FROM {{series}}""",
        "consents": f"""INSERT INTO consents (customer_id, channel, purpose, state, source,
                evidence, updated_at)
            SELECT 2 * n, 'email', 'marketing', 'granted', 'import',
                {evidence},
                {d.now}
            FROM {{series}}""",
    }


def sizes(history: int) -> dict[str, int]:
    customers = max(history // 100, 100)
    return {
        "agents": AGENTS,
        "presence_changes": AGENTS * DAYS * 8,
        "customers": customers,
        "identities": customers,
        "conversations": history // 5,
        "interactions": history,
        "complaints": history // 200,
        "campaigns": CAMPAIGNS,
        "outbox": CAMPAIGNS * PER_CAMPAIGN,
        "blocks": customers // 50,
        "consents": customers // 2,
    }


async def _indexes(engine: AsyncEngine, create: bool) -> None:
    """Drop (or build) the interactions' secondary indexes around the bulk fill."""
    indexes = sorted(Interaction.__table__.indexes, key=lambda index: index.name or "")
    async with engine.begin() as connection:
        for index in indexes:
            await connection.run_sync(index.create if create else index.drop)


async def fill(engine: AsyncEngine, history: int) -> None:
    dialect = Dialect(engine.dialect.name)
    counts = sizes(history)
    await _indexes(engine, create=False)
    for table, statement in statements(dialect).items():
        prefix, series = dialect.series()
        sql = text(prefix + statement.replace("{series}", series))
        started = time.perf_counter()
        for first in range(1, counts[table] + 1, CHUNK):
            last = min(counts[table], first + CHUNK - 1)
            async with engine.begin() as connection:
                await connection.execute(
                    sql, {"first": first, "last": last, "c": counts["customers"]}
                )
        print(f"  {table:<17} {counts[table]:>12,} rows in {time.perf_counter() - started:6.1f} s")
    started = time.perf_counter()
    await _indexes(engine, create=True)
    print(f"  interactions' indexes built in {time.perf_counter() - started:.1f} s")
    await _settle(engine, dialect)


async def _settle(engine: AsyncEngine, dialect: Dialect) -> None:
    """Statistics for the planner, and (PostgreSQL) the visibility map index-only scans need."""
    if dialect.postgres:
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        async with autocommit.connect() as connection:
            await connection.execute(text("VACUUM ANALYZE"))
            for table in ("agents", "customers", "conversations", "campaigns"):
                await connection.execute(
                    text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
                )
    else:
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))


# --- the cases ----------------------------------------------------------------


def dashboard_query() -> KpiQuery:
    return KpiQuery(Period(NOW - timedelta(days=30), NOW), Filters(), 7, NOW)


def cases(hub: Hub) -> list[Case]:
    query = dashboard_query()
    baseline = "bare COUNT(*) of interactions"

    async def count(session: AsyncSession) -> Any:
        return await session.scalar(select(func.count()).select_from(Interaction))

    async def dashboard(_session: AsyncSession) -> Any:
        # As the page does: the figures in their parts, side by side, a session each.
        return await compute_areas(hub, query)

    def one(figure: Any) -> Any:
        async def run(session: AsyncSession) -> Any:
            await prepare(session)
            return await figure(session, query)

        return run

    chosen = [Case(baseline, count), Case("whole dashboard", dashboard, baseline)]
    for area, figures_ in AREAS.items():
        chosen += [Case(f"{area}: {name}", one(f), baseline) for name, f in figures_.items()]
    return chosen


async def show_plan(hub: Hub) -> None:
    """The plan of the figure that reads the history, so a reader sees which index it uses."""
    per_customer = inbound_contacts(dashboard_query(), Interaction.customer_id, func.count())
    statement = per_customer.group_by(Interaction.customer_id)
    async with hub.sessions() as session, session.begin():
        await prepare(session)
        lines = await explain(session, statement)
    print("plan of the contacts per customer (the figure that reads the history):")
    for line in lines[:12]:
        print(f"  {line}")


async def check_rollup(hub: Hub) -> bool:
    """The rollup the triggers kept through the fill equals its recomputation."""
    async with hub.sessions() as session, session.begin():
        kept, differing = len(await kept_rows(session)), await rows_differ(session)
    verdict = "equal to" if not differing else f"{len(differing)} rows differ from"
    print(f"CHECK kpi_customers: {kept:,} rows, {verdict} their recomputation from the raw tables")
    return not differing


async def run(arguments: argparse.Namespace) -> None:
    async with scratch_database(arguments.database_url, arguments.postgres) as url:
        await migrate(url)
        hub = Hub.create(load_settings(_env_file=None, database_url=url))
        try:
            print(
                f"bench.kpis on {await server_version(hub)}: {arguments.history:,} history entries"
            )
            started = time.perf_counter()
            if not arguments.filled:
                await fill(hub.engine, arguments.history)
            print(f"filled in {time.perf_counter() - started:.0f} s")
            await show_plan(hub)
            consistent = await check_rollup(hub)
            chosen = cases(hub)
            samples = await measure(hub.sessions, chosen, arguments.repeat, arguments.warmup)
            results = {name: figures(values) for name, values in samples.items()}
            rounds = f"{arguments.repeat} samples per case, interleaved, after {arguments.warmup}"
            print(f"\n{rounds} rounds:")
            for line in render_table(chosen, results):
                print(line)
            whole, bare = results["whole dashboard"], results["bare COUNT(*) of interactions"]
            summarise(
                Summary(
                    f"figures dashboard, {arguments.history:,} history entries",
                    f"p50 {whole.p50:.0f} ms (p99 {whole.p99:.0f} ms)",
                    f"bare COUNT(*) of interactions p50 {bare.p50:.0f} ms",
                    whole.p50 / bare.p50,
                    f"p50 under {GOAL_MS:.0f} ms",
                    whole.p50 < GOAL_MS,
                )
            )
        finally:
            await hub.close()
    if not consistent:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_arguments(argv)))


if __name__ == "__main__":
    main()
