"""Tiers by ABC analysis of revenue, and `omnihub tiers recompute` and `serve` as users run them."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from hub.context import Hub
from hub.db import migrate
from hub.errors import InvalidInputError
from hub.models import Customer
from hub.settings import load_settings
from routing.tiers import classify, parse_shares, recompute_tiers

OMNIHUB = shutil.which("omnihub", path=str(Path(sys.executable).parent))


def test_the_customer_crossing_a_boundary_still_belongs_to_the_class_above():
    revenues = [Decimal(n) for n in (500, 300, 100, 50, 30, 20, 0)]

    assert classify(revenues, (80, 15, 5)) == ["A", "A", "B", "B", "C", "C", "C"]
    assert classify(revenues, (50, 30, 20)) == ["A", "B", "C", "C", "C", "C", "C"]


def test_a_customer_without_revenue_is_always_c():
    assert classify([Decimal(0), Decimal(0)], (80, 15, 5)) == ["C", "C"]


@pytest.mark.parametrize("raw", ["80/15", "80/15/6", "a/b/c", "0/50/50"])
def test_shares_must_be_three_percentages_adding_up_to_100(raw: str):
    with pytest.raises(InvalidInputError):
        parse_shares(raw)


async def add_customers(hub: Hub, *rows: tuple[str, int, str | None, bool]) -> dict[str, int]:
    async with hub.work() as work:
        made = [
            Customer(name=name, revenue=Decimal(revenue), tier=tier, tier_manual=manual)
            for name, revenue, tier, manual in rows
        ]
        work.session.add_all(made)
        await work.session.flush()
        return {customer.name: customer.id for customer in made}


async def test_recompute_stores_the_tiers_reports_who_moved_and_keeps_manual_tiers(hub: Hub):
    ids = await add_customers(
        hub,
        ("Big", 500, "B", False),
        ("Also big", 300, None, False),
        ("Middle", 100, "A", False),
        ("Pet project", 50, "A", True),
        ("Small", 30, "C", False),
        ("Tiny", 20, "A", False),
    )

    report = await recompute_tiers(hub)
    again = await recompute_tiers(hub)

    moved = {(m.name, m.old, m.new) for m in report.moves}
    assert moved == {
        ("Big", "B", "A"),
        ("Also big", None, "A"),
        ("Middle", "A", "B"),
        ("Tiny", "A", "C"),
    }
    assert (report.customers, report.kept_manual, report.counts) == (
        6,
        1,
        {"A": 3, "B": 1, "C": 2},
    )
    assert again.moves == []
    async with hub.sessions() as session:
        pet = await session.get(Customer, ids["Pet project"])
    assert pet.tier == "A"


def test_the_tiers_recompute_command_reports_who_moved(tmp_path: Path):
    assert OMNIHUB is not None
    database = f"sqlite+aiosqlite:///{tmp_path / 'tiers.db'}"

    async def seed() -> None:
        await migrate(database)
        hub = Hub.create(load_settings(_env_file=None, database_url=database))
        try:
            await add_customers(hub, ("Big", 900, None, False), ("Small", 10, "A", False))
        finally:
            await hub.close()

    asyncio.run(seed())
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env["OMNIHUB_DATABASE_URL"] = database

    done = subprocess.run(
        [OMNIHUB, "tiers", "recompute"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    wrong = subprocess.run(
        [OMNIHUB, "tiers", "recompute", "--shares", "90/20/5"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "2 customers: A 1, B 0, C 1; 2 moved, 0 set by hand kept",
        "  1 Big: - -> A",
        "  2 Small: A -> C",
    ]
    assert wrong.returncode == 2 and "add up to 100" in wrong.stderr


def test_serve_stops_on_a_wrong_rules_file_naming_file_line_and_problem(tmp_path: Path):
    assert OMNIHUB is not None
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: all\n    queue: pool\n    steps: [team, deputy]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env["OMNIHUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    env["OMNIHUB_ROUTING_RULES"] = str(rules)

    done = subprocess.run(
        [OMNIHUB, "serve", "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"omnihub: {rules}, line 4: rule 'all': steps: the last step, and only it, is `team`"
    )
