"""A campaign's progress: its messages counted by outcome, read from the outbox.

    queued        waiting to be sent (claimed ones included)
    sent          accepted by the server or provider (delivered included)
    blocked       stopped by the gate, when queued or at send time
    failed        refused for good, or could not be rendered
    unknown       may have gone out (never sent again)
    cancelled     stopped by cancelling the campaign
    bounced       sent, then the address hard-bounced (a `hard_bounce` block since)
    unsubscribed  the address unsubscribed since the message was queued

`total` is every row; `done` is every row no longer waiting.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

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


async def campaign_progress(session: AsyncSession, campaign_id: int) -> dict[str, Any]:
    mine = OutboxMessage.campaign_id == campaign_id
    counts = dict.fromkeys(("queued", "sent", "blocked", "failed", "unknown", "cancelled"), 0)
    statement = (
        select(OutboxMessage.status, func.count()).where(mine).group_by(OutboxMessage.status)
    )
    for status, count in await session.execute(statement):
        counts[BUCKETS.get(status, status)] = counts.get(BUCKETS.get(status, status), 0) + count
    counts["bounced"] = await _count_later_blocks(session, mine, ("hard_bounce",))
    counts["unsubscribed"] = await _count_later_blocks(session, mine, ("unsubscribe", "sms_stop"))
    total = sum(counts[k] for k in ("queued", "sent", "blocked", "failed", "unknown", "cancelled"))
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
