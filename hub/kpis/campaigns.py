"""Campaign figures: what each campaign that started in the period sent, and what came of it.

Counted over the campaign's outbox rows (one per recipient):

    messages      every row
    sent          rows that left the hub (`sent_at` set: sent, delivered, or
                  reported undelivered afterwards)
    blocked       rows the gate stopped; `campaign_blocks` splits them by
                  reason (a row stopped for two reasons counts under both)
    failed        rows refused for good
    bounced       sent rows whose address hard-bounced since (`hard_bounce`)
    unsubscribed  sent rows whose address unsubscribed or texted STOP since
    replied       sent rows whose customer wrote back (an inbound contact on
                  any channel) within `days` (default 7) after it was sent
    reply_rate    replied / sent

bounced and unsubscribed follow the campaign's own progress view
(`hub.campaigns.progress`): a block on the row's address made after the row.
The channel filter picks campaigns by channel, the tier filter the rows of
customers of that tier.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sqlalchemy import ColumnElement, String, and_, case, cast, exists, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.kpis.query import KpiQuery
from hub.kpis.sql import applied, dialect_of, in_period, tier_matches
from hub.kpis.tables import Table, share
from hub.models import Block, Campaign, Customer, Interaction, OutboxMessage

COLUMNS = (
    "campaign_id",
    "campaign",
    "channel",
    "status",
    "started_at",
    "messages",
    "sent",
    "blocked",
    "failed",
    "bounced",
    "unsubscribed",
    "replied",
    "reply_rate",
)


def _reply_deadline(dialect: str, days: int) -> ColumnElement[Any]:
    """`sent_at` plus `days` (a checked whole number, so inline)."""
    if dialect == "postgresql":
        return OutboxMessage.sent_at + literal_column(f"interval '{int(days)} days'")
    # SQLite keeps times as text; strftime's %f has milliseconds, so the deadline is
    # widened to the end of its millisecond to stay inclusive.
    shifted = func.strftime("%Y-%m-%d %H:%M:%f", OutboxMessage.sent_at, f"+{int(days)} days")
    return shifted.concat(literal_column("'999'"))


def _later_block(reasons: tuple[str, ...]) -> ColumnElement[bool]:
    return exists().where(
        Block.kind.in_(("email", "phone")),
        Block.value == OutboxMessage.recipient,
        Block.reason.in_(reasons),
        Block.created_at >= OutboxMessage.created_at,
    )


def _replied(dialect: str, days: int) -> ColumnElement[bool]:
    return exists().where(
        Interaction.customer_id == OutboxMessage.customer_id,
        Interaction.direction == "inbound",
        Interaction.occurred_at > OutboxMessage.sent_at,
        Interaction.occurred_at <= _reply_deadline(dialect, days),
    )


def _tally(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _rows_of_campaigns(query: KpiQuery, *columns: Any) -> Any:
    statement = (
        select(*columns)
        .select_from(OutboxMessage)
        .join(Campaign, Campaign.id == OutboxMessage.campaign_id)
        .where(in_period(Campaign.started_at, query.period))
    )
    if query.filters.channel:
        statement = statement.where(Campaign.channel == query.filters.channel)
    if query.filters.tier:
        statement = statement.join(Customer, Customer.id == OutboxMessage.customer_id).where(
            tier_matches(query.filters.tier)
        )
    return statement


async def campaign_rows(session: AsyncSession, query: KpiQuery) -> Table:
    sent = OutboxMessage.sent_at.is_not(None)
    counts = _rows_of_campaigns(
        query,
        OutboxMessage.campaign_id,
        func.count(),
        _tally(sent),
        _tally(OutboxMessage.status == "blocked"),
        _tally(OutboxMessage.status == "failed"),
        _tally(and_(sent, _later_block(("hard_bounce",)))),
        _tally(and_(sent, _later_block(("unsubscribe", "sms_stop")))),
        _tally(and_(sent, _replied(dialect_of(session), query.reply_days))),
    ).group_by(OutboxMessage.campaign_id)
    tallies = {row[0]: row[1:] for row in (await session.execute(counts)).all()}
    campaigns = select(Campaign).where(in_period(Campaign.started_at, query.period))
    if query.filters.channel:
        campaigns = campaigns.where(Campaign.channel == query.filters.channel)
    rows = []
    for campaign in await session.scalars(campaigns.order_by(Campaign.started_at, Campaign.id)):
        counts = tuple(tallies.get(campaign.id, (0,) * 7))
        went, replied = counts[1], counts[-1]
        started = campaign.started_at.isoformat() if campaign.started_at else None
        head = (campaign.id, campaign.name, campaign.channel, campaign.status, started)
        rows.append((*head, *counts, share(replied, went)))
    return Table("campaigns", COLUMNS, rows, applied(query.filters, ("channel", "tier")))


async def campaign_blocks(session: AsyncSession, query: KpiQuery) -> Table:
    reasons = cast(OutboxMessage.blocked_reasons, String)
    statement = (
        _rows_of_campaigns(query, OutboxMessage.campaign_id, reasons.label("reasons"), func.count())
        .where(OutboxMessage.status == "blocked")
        .group_by(OutboxMessage.campaign_id, "reasons")
    )
    counts: Counter[tuple[int, str]] = Counter()
    for campaign_id, text, n in (await session.execute(statement)).all():
        for reason in json.loads(text or "[]") or ["unknown"]:
            counts[(campaign_id, reason)] += n
    rows = [(campaign_id, reason, n) for (campaign_id, reason), n in sorted(counts.items())]
    return Table(
        "campaign_blocks",
        ("campaign_id", "reason", "messages"),
        rows,
        applied(query.filters, ("channel", "tier")),
    )


FIGURES = {"campaigns": campaign_rows, "campaign_blocks": campaign_blocks}
