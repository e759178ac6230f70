"""Customer tiers by ABC analysis of revenue (Pareto): A, B and C.

Customers are ranked by revenue, highest first; walking down the ranking, a
customer whose predecessors together hold less than the A share of all
revenue (80 % by default) is A, less than A + B (95 %) is B, the rest C. So
the customer who crosses a boundary still belongs to the class above it, and
a customer without revenue is always C. A tier set by hand (`tier_manual`)
is never overwritten, but its revenue counts in the totals. Merged-away
customers are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select, update

from hub.context import Hub
from hub.errors import InvalidInputError
from hub.models import Customer

DEFAULT_SHARES = (80, 15, 5)
UPDATE_BATCH = 500


@dataclass(frozen=True, slots=True)
class TierMove:
    customer_id: int
    name: str
    old: str | None
    new: str
    revenue: Decimal


@dataclass
class TierReport:
    customers: int = 0
    kept_manual: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"A": 0, "B": 0, "C": 0})
    moves: list[TierMove] = field(default_factory=list)


def parse_shares(raw: str) -> tuple[int, int, int]:
    """`80/15/5` as numbers; they must be whole percentages adding up to 100."""
    parts = raw.replace(",", "/").split("/")
    if len(parts) != 3 or not all(part.strip().isdigit() for part in parts):
        raise InvalidInputError("shares are three whole percentages, e.g. 80/15/5", field="shares")
    a, b, c = (int(part) for part in parts)
    if a + b + c != 100 or a == 0:
        raise InvalidInputError("the shares must add up to 100, A above 0", field="shares")
    return a, b, c


def classify(revenues: list[Decimal], shares: tuple[int, int, int]) -> list[str]:
    """The tier of each revenue, given in descending order."""
    total = sum(revenues, Decimal(0))
    a_limit = total * shares[0] / 100
    b_limit = total * (shares[0] + shares[1]) / 100
    tiers, before = [], Decimal(0)
    for revenue in revenues:
        if revenue <= 0:
            tiers.append("C")
        elif before < a_limit:
            tiers.append("A")
        elif before < b_limit:
            tiers.append("B")
        else:
            tiers.append("C")
        before += revenue
    return tiers


async def recompute_tiers(hub: Hub, shares: tuple[int, int, int] = DEFAULT_SHARES) -> TierReport:
    """Run the analysis over every customer and store the tiers that changed."""
    report = TierReport()
    async with hub.work() as work:
        rows = (
            await work.session.execute(
                select(
                    Customer.id,
                    Customer.name,
                    Customer.tier,
                    Customer.tier_manual,
                    Customer.revenue,
                )
                .where(Customer.merged_into_id.is_(None))
                .order_by(Customer.revenue.desc(), Customer.id)
            )
        ).all()
        tiers = classify([row.revenue or Decimal(0) for row in rows], shares)
        for row, tier in zip(rows, tiers, strict=True):
            report.customers += 1
            if row.tier_manual:
                report.kept_manual += 1
                report.counts[row.tier or "C"] = report.counts.get(row.tier or "C", 0) + 1
                continue
            report.counts[tier] += 1
            if row.tier != tier:
                report.moves.append(TierMove(row.id, row.name, row.tier, tier, row.revenue))
        for tier in ("A", "B", "C"):
            ids = [move.customer_id for move in report.moves if move.new == tier]
            for start in range(0, len(ids), UPDATE_BATCH):
                chunk = ids[start : start + UPDATE_BATCH]
                await work.session.execute(
                    update(Customer).where(Customer.id.in_(chunk)).values(tier=tier)
                )
        if report.moves:
            work.emit("customers.tiers_recomputed", moved=len(report.moves))
    return report
