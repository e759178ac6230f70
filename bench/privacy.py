"""GDPR export and erasure of one large customer, against bare statements on her rows.

Fills one customer with 20,000 interactions (`--rows`) across channels, beside
1,000 other customers with 200,000 interactions (`--other-rows`) and an audit
log of 100,000 entries (`--audit`), a tenth of a percent of which name her
address. Then times, interleaved, each in a transaction rolled back afterwards:

- `export` (`hub.privacy.export.build_export`) against the baseline `bare SELECT`
  of every column of her interactions, the bulk of what an export reads;
- `erase` (`hub.privacy.erasure.do_erase`, sweep included) against the baseline
  `bare UPDATE + audit scan`: one UPDATE blanking her interactions' bodies and
  one LIKE scan of the audit log for her address, the least an erasure that
  sweeps the audit log must do.

There is no target from the issue (both are rare requests by a person, not
the hot path); PASS means each stays within TARGET (10x) of its baseline, so a
regression that makes either scale with the whole database shows up.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import Text, cast, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bench.harness import (
    Case,
    Summary,
    add_database_arguments,
    figures,
    measure,
    render_table,
    scratch_database,
    summarise,
)
from hub.context import Hub, Work
from hub.db import migrate
from hub.models import AuditEntry, Customer, Identity, Interaction, utcnow
from hub.privacy.erasure import do_erase
from hub.privacy.export import build_export
from hub.settings import load_settings

TARGET = 10.0
CUSTOMERS = 1000
CHANNELS = ("email", "sms", "voice", "webform", "chat")
BATCH = 5000


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.privacy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database_arguments(parser)
    parser.add_argument("--rows", type=int, default=20_000, help="interactions of the customer")
    parser.add_argument("--other-rows", type=int, default=200_000, help="everyone else's")
    parser.add_argument("--audit", type=int, default=100_000, help="audit log entries")
    parser.add_argument("--repeat", type=int, default=10, help="timed samples per case")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    return parser.parse_args(argv)


async def fill(hub: Hub, arguments: argparse.Namespace) -> None:
    """Customer 1 is the one asking; customers 2 to 1000 are everyone else."""
    chance = random.Random(arguments.seed)
    now = utcnow()
    async with hub.work() as work:
        await work.session.execute(insert(Customer), [_customer(i, now) for i in _ids()])
        await work.session.execute(
            insert(Identity),
            [
                {"customer_id": i, "kind": "email", "value": _email(i), "created_at": now}
                for i in _ids()
            ],
        )
    mine = [_interaction(1, n, now, chance) for n in range(arguments.rows)]
    theirs = [
        _interaction(chance.randint(2, CUSTOMERS), n, now, chance)
        for n in range(arguments.other_rows)
    ]
    await _insert(hub, Interaction, mine + theirs)
    await _insert(hub, AuditEntry, [_audit(chance, now) for _ in range(arguments.audit)])


def _ids() -> range:
    return range(1, CUSTOMERS + 1)


def _email(customer_id: int) -> str:
    return f"kunde{customer_id}@example.org"


def _customer(customer_id: int, now: Any) -> dict[str, Any]:
    return {
        "id": customer_id,
        "name": f"Kundin Nummer{customer_id} Beispiel",
        "tags": [],
        "revenue": 0,
        "is_prospect": False,
        "tier_manual": False,
        "created_at": now,
        "updated_at": now,
    }


def _interaction(customer_id: int, n: int, now: Any, chance: random.Random) -> dict[str, Any]:
    channel = chance.choice(CHANNELS)
    return {
        "customer_id": customer_id,
        "channel": channel,
        "direction": "inbound",
        "kind": "message",
        "subject": f"Anliegen {n}",
        "text": f"Guten Tag, hier schreibt Kundin Nummer{customer_id} Beispiel. " * 4,
        "sender": _email(customer_id) if channel == "email" else None,
        "meta": {"topic": "inquiry"},
        "occurred_at": now - timedelta(minutes=n),
        "created_at": now,
    }


def _audit(chance: random.Random, now: Any) -> dict[str, Any]:
    customer_id = chance.randint(1, CUSTOMERS)
    return {
        "action": "customer.updated",
        "entity": "customer",
        "entity_id": customer_id,
        "details": {"added_emails": [_email(customer_id)]},
        "at": now,
    }


async def _insert(hub: Hub, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), BATCH):
        async with hub.work() as work:
            await work.session.execute(insert(model), rows[start : start + BATCH])


def build_cases(hub: Hub) -> list[Case]:
    key = hub.policy.suppression_key or b""

    async def export(session: AsyncSession) -> object:
        return await build_export(session, 1)

    async def bare_select(session: AsyncSession) -> object:
        table = Interaction.__table__
        return (await session.execute(select(table).where(table.c.customer_id == 1))).all()

    async def erase(session: AsyncSession) -> object:
        return await do_erase(Work(session), None, 1, key)

    async def bare_update(session: AsyncSession) -> object:
        await session.execute(
            update(Interaction)
            .where(Interaction.customer_id == 1)
            .values(subject=None, text=None, html=None, sender=None)
        )
        details = func.lower(cast(AuditEntry.details, Text))
        return (
            await session.execute(select(AuditEntry.id).where(details.contains(_email(1))))
        ).all()

    return [
        Case("bare SELECT of her interactions", bare_select),
        Case("export", export, baseline="bare SELECT of her interactions"),
        Case("bare UPDATE + audit scan", bare_update),
        Case("erase (rolled back)", erase, baseline="bare UPDATE + audit scan"),
    ]


def print_verdicts(cases: list[Case], results: dict[str, Any]) -> None:
    for case in cases:
        if case.baseline is None:
            continue
        ratio = results[case.name].p50 / results[case.baseline].p50
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        target = f"target: within {TARGET:g}x"
        print(f"{verdict}: {case.name} p50 is {ratio:.2f}x its baseline's ({target})")
        summarise(
            Summary(
                f"GDPR: {case.name}",
                f"p50 {results[case.name].p50:.0f} ms",
                f"{case.baseline} p50 {results[case.baseline].p50:.0f} ms",
                ratio,
                f"within {TARGET:g}x (ours; the issue sets none)",
                ratio <= TARGET,
            )
        )


async def run(arguments: argparse.Namespace) -> None:
    async with scratch_database(arguments.database_url, arguments.postgres) as url:
        await migrate(url)
        hub = Hub.create(load_settings(_env_file=None, database_url=url))
        try:
            print(
                f"bench.privacy on {hub.engine.dialect.name}: one customer with "
                f"{arguments.rows:,} interactions beside {CUSTOMERS - 1} others with "
                f"{arguments.other_rows:,}, audit log of {arguments.audit:,}"
            )
            started = time.perf_counter()
            await fill(hub, arguments)
            print(f"filled in {time.perf_counter() - started:.1f} s")
            cases = build_cases(hub)
            samples = await measure(hub.sessions, cases, arguments.repeat, arguments.warmup)
            results = {name: figures(values) for name, values in samples.items()}
            rounds = f"after {arguments.warmup} rounds"
            print(f"\n{arguments.repeat} samples per case, interleaved, {rounds}:")
            print("\n".join(render_table(cases, results)))
            print_verdicts(cases, results)
        finally:
            await hub.close()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_arguments(argv)))


if __name__ == "__main__":
    main()
