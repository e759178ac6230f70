"""Delivery reports (RFC 3464) about mail the hub sent.

A report is matched to the outbox message it is about (by the hub's own
Message-ID, whose HMAC names the outbox row, else by provider id). A permanent
failure (status 5.x.x) blocks the address with `hard_bounce`; a temporary one
(4.x.x) is counted. Both are entries in the customer's history, once per
report (the report's own id is the idempotency key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from hub.blocks import do_add_block
from hub.context import Hub, Work
from hub.intake import find_ingested
from hub.models import Interaction, OutboxMessage


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    external_id: str
    recipient: str
    status: str
    is_permanent: bool
    received_at: datetime
    original_message_id: str | None = None
    outbox_id: int | None = None
    diagnostic: str | None = None


@dataclass(frozen=True, slots=True)
class BounceResult:
    outbox_id: int | None
    blocked: bool
    duplicate: bool = False


async def accept_bounce(hub: Hub, report: DeliveryReport) -> BounceResult:
    """Record one delivery report in a transaction of its own."""
    async with hub.work() as work:
        result = await record_bounce(work, hub, report)
    count_bounce(hub, report, result)
    return result


async def record_bounce(work: Work, hub: Hub, report: DeliveryReport) -> BounceResult:
    """Record a delivery report inside `work`; one seen before changes nothing."""
    if await find_ingested(work, "email", report.external_id) is not None:
        return BounceResult(None, False, duplicate=True)
    row = await _reported_message(work, report)
    blocked = report.is_permanent and await _block(work, hub, report)
    _record(work, report, row)
    return BounceResult(row.id if row else None, blocked)


def count_bounce(hub: Hub, report: DeliveryReport, result: BounceResult) -> None:
    """Count a committed report; duplicates are not counted."""
    if not result.duplicate:
        hub.metrics.bounces.labels("hard" if report.is_permanent else "soft").inc()


async def _reported_message(work: Work, report: DeliveryReport) -> OutboxMessage | None:
    if report.outbox_id is not None:
        row = await work.session.get(OutboxMessage, report.outbox_id)
        if row is not None:
            return row
    if report.original_message_id is None:
        return None
    statement = select(OutboxMessage).where(OutboxMessage.provider_id == report.original_message_id)
    return (await work.session.scalars(statement)).first()


async def _block(work: Work, hub: Hub, report: DeliveryReport) -> bool:
    await do_add_block(
        work,
        None,
        "email",
        report.recipient,
        "hard_bounce",
        hub.settings.default_region,
        note=f"{report.status} {report.diagnostic or ''}".strip()[:500],
    )
    return True


def _record(work: Work, report: DeliveryReport, row: OutboxMessage | None) -> None:
    if row is None or row.customer_id is None:
        return
    kind = "permanent" if report.is_permanent else "temporary"
    work.session.add(
        Interaction(
            customer_id=row.customer_id,
            conversation_id=row.conversation_id,
            channel="email",
            direction="inbound",
            kind="bounce",
            external_id=report.external_id,
            sender=report.recipient,
            occurred_at=report.received_at,
            text=f"{kind} delivery failure to {report.recipient}: {report.status} "
            f"{report.diagnostic or ''}".strip(),
            meta={"outbox_id": row.id, "status": report.status, "permanent": report.is_permanent},
        )
    )
    work.emit(
        "message.bounced",
        outbox_id=row.id,
        customer_id=row.customer_id,
        permanent=report.is_permanent,
    )
