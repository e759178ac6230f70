"""A campaign's progress: its messages counted by outcome, read from the outbox.

    queued        waiting to be sent (claimed ones included)
    sent          accepted by the server or provider (delivered included)
    blocked       stopped by the gate, when queued or at send time
    failed        refused for good, or could not be rendered
    unknown       may have gone out (never sent again)
    cancelled     stopped by cancelling the campaign
    bounced       sent, then the address hard-bounced (a `hard_bounce` block since)
    unsubscribed  the address unsubscribed since the message was queued

`total` is every row; `done` is every row no longer waiting. `campaign_messages`
lists the messages themselves, by outcome: the `unknown` ones are what an
operator reconciles by hand after a crash.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import InvalidInputError
from hub.models import Block, OutboxMessage

BUCKETS = {
    "queued": "queued",
    "sending": "queued",
    "handed": "queued",
    "sent": "sent",
    "delivered": "sent",
    "blocked": "blocked",
    "failed": "failed",
    "unknown": "unknown",
    "cancelled": "cancelled",
}


OUTCOMES = ("queued", "sent", "blocked", "failed", "unknown", "cancelled")


async def campaign_messages(
    session: AsyncSession,
    campaign_id: int,
    outcome: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int | None]:
    """The campaign's messages in the order they were queued, those with `outcome` only
    when given; and the id to page on from (None: that was the last page)."""
    statement = (
        select(OutboxMessage)
        .where(OutboxMessage.campaign_id == campaign_id)
        .order_by(OutboxMessage.id)
        .limit(limit + 1)
    )
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise InvalidInputError(f"status is one of {', '.join(OUTCOMES)}", field="status")
        statuses = [status for status, bucket in BUCKETS.items() if bucket == outcome]
        statement = statement.where(OutboxMessage.status.in_(statuses))
    if after is not None:
        statement = statement.where(OutboxMessage.id > after)
    rows = list(await session.scalars(statement))
    more = len(rows) > limit
    return [_message_view(row) for row in rows[:limit]], rows[limit - 1].id if more else None


def _message_view(row: OutboxMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "customer_id": row.customer_id,
        "channel": row.channel,
        "recipient": row.recipient,
        "status": BUCKETS.get(row.status, row.status),
        "attempts": row.attempts,
        "last_error": row.last_error,
        "blocked_reasons": row.blocked_reasons,
        "provider_id": row.provider_id,
        "queued_at": row.created_at,
        "sent_at": row.sent_at,
    }


async def campaign_progress(session: AsyncSession, campaign_id: int) -> dict[str, Any]:
    mine = OutboxMessage.campaign_id == campaign_id
    counts = dict.fromkeys(OUTCOMES, 0)
    statement = (
        select(OutboxMessage.status, func.count()).where(mine).group_by(OutboxMessage.status)
    )
    for status, count in await session.execute(statement):
        counts[BUCKETS.get(status, status)] = counts.get(BUCKETS.get(status, status), 0) + count
    counts["bounced"] = await _count_later_blocks(session, mine, ("hard_bounce",))
    counts["unsubscribed"] = await _count_later_blocks(session, mine, ("unsubscribe", "sms_stop"))
    total = sum(counts[k] for k in OUTCOMES)
    return {**counts, "total": total, "done": total - counts["queued"]}


async def _count_later_blocks(session: AsyncSession, mine: Any, reasons: tuple[str, ...]) -> int:
    later = exists().where(
        and_(
            Block.kind.in_(("email", "phone")),
            Block.value == OutboxMessage.recipient,
            Block.reason.in_(reasons),
            Block.created_at >= OutboxMessage.created_at,
        )
    )
    statement = select(func.count()).where(
        mine, OutboxMessage.status.in_(("sent", "delivered", "failed")), later
    )
    return int((await session.execute(statement)).scalar_one())
