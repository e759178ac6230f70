"""The dispatcher: takes due outbox rows, asks the gate again, hands them to senders.

The gate is asked once for each claimed batch (up to `batch` rows, one
`check_many` per purpose), right before its rows are sent one by one; and
each row after a batch's first has its blocks asked again just before it is
sent (`gate.standing_blocks`, one query), so that an unsubscribe, STOP or
bounce committed while the batch went out stops every message that has not
left.

One item per commit, as a crash-safe worker should: a claim is committed
(status `sending`, a lease, the claimer's name, one more attempt) before the
sender is called, and the outcome is committed after. A claimer that dies
leaves its rows `sending` until the lease runs out; then any dispatcher
reclaims them. An outcome is only recorded by the claimer that still holds the
row, so a row is never recorded twice.

Claiming uses `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several dispatchers
share the work; on SQLite every transaction begins IMMEDIATE, which makes the
claim a single writer's.

Outcomes: `sent` with the provider's id; a transient error (or any unexpected
exception: a bug delays mail rather than losing it) retries with exponential
backoff until `outbox_max_attempts`; a permanent error is `failed`; the gate
saying no is `blocked`; a sender that cannot know whether the message went out
(connection lost after SMTP DATA) makes it `unknown`, which is never re-sent. A
missing sender for a channel is transient: the message goes out once the
channel is configured, or fails after its attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from hub.blocks import do_add_block
from hub.context import Hub
from hub.delivery import (
    PermanentDeliveryError,
    RecipientRefusedError,
    Sender,
    UnknownDeliveryError,
)
from hub.gate import ADDRESS_KIND, Recipient, check_each, standing_blocks
from hub.models import OutboxMessage, utcnow
from hub.outbox import add_outcome_to_history
from hub.values import Outbound

log = logging.getLogger(__name__)

BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 6 * 3600


def claimer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Dispatcher:
    def __init__(
        self,
        hub: Hub,
        senders: dict[str, Sender],
        name: str | None = None,
        batch: int = 20,
        poll_seconds: float = 1.0,
    ) -> None:
        self.hub = hub
        self.senders = senders
        self.name = name or claimer_name()
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=hub.settings.outbox_lease_seconds)
        # The sender's own timeouts (per SMTP step, say) should end it well before this.
        self.send_seconds = self.lease.total_seconds() * 0.8

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until `stop` is set; an error in one round never ends the loop."""
        while not stop.is_set():
            try:
                handled = await self.dispatch_once()
            except Exception:
                log.exception("outbox dispatch round failed; trying again")
                handled = 0
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_seconds)

    async def dispatch_once(self) -> int:
        rows = await self.claim()
        refusals = await self._gate(rows)
        for index, row in enumerate(rows):
            reasons = refusals[row.id]
            if index and not reasons:
                reasons = await self._blocked_now(row)
            await self.deliver(row, reasons)
        return len(rows)

    async def claim(self) -> list[OutboxMessage]:
        now = utcnow()
        due = (
            select(OutboxMessage.id)
            .where(
                or_(
                    and_(OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now),
                    and_(OutboxMessage.status == "sending", OutboxMessage.lease_until < now),
                ),
                # A campaign's rows are its campaign sender's (`hub.campaigns.sending`).
                OutboxMessage.campaign_id.is_(None),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(self.batch)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(due.scalar_subquery()))
            .values(
                status="sending",
                lease_until=now + self.lease,
                claimed_by=self.name,
                attempts=OutboxMessage.attempts + 1,
            )
            .returning(OutboxMessage)
            .execution_options(synchronize_session=False)
        )
        async with self.hub.work() as work:
            rows = list(await work.session.scalars(claim))
        return sorted(rows, key=lambda row: (row.next_attempt_at, row.id))

    async def deliver(self, row: OutboxMessage, reasons: tuple[str, ...]) -> None:
        """Send one claimed row, or record it blocked for the gate's `reasons`."""
        if reasons:
            await self._record(
                row,
                "blocked",
                blocked_reasons=list(reasons),
                summary="blocked: " + ", ".join(reasons),
            )
            return
        sender = self.senders.get(row.channel)
        if sender is None:
            await self._retry(row, f"no sender is configured for channel {row.channel}")
            return
        try:
            receipt = await asyncio.wait_for(sender.send(outbound(row)), self.send_seconds)
        except TimeoutError:
            # Cut off mid-send, the message may have gone out: never send it blindly again.
            await self._record(
                row,
                "unknown",
                last_error="the sender did not finish in time",
                summary="delivery unknown: the sender did not finish in time",
            )
        except RecipientRefusedError as error:
            await self._record(
                row,
                "failed",
                last_error=str(error),
                summary=f"failed: {error}",
                block_reason=error.block_reason,
            )
        except PermanentDeliveryError as error:
            await self._record(row, "failed", last_error=str(error), summary=f"failed: {error}")
        except UnknownDeliveryError as error:
            await self._record(
                row, "unknown", last_error=str(error), summary=f"delivery unknown: {error}"
            )
        except Exception as error:  # see the module docstring: any error is retried
            await self._retry(row, f"{type(error).__name__}: {error}")
        else:
            await self._record(
                row,
                "sent",
                provider_id=receipt.provider_id,
                sent_at=utcnow(),
                summary=f"sent ({receipt.provider_id})",
            )

    async def _gate(self, rows: list[OutboxMessage]) -> dict[int, tuple[str, ...]]:
        """The gate's reasons against each claimed row (none: it may go), asked for the
        whole claim at once, a query or few per purpose instead of per row."""
        asked = [(Recipient(r.customer_id, r.channel, r.recipient), r.purpose) for r in rows]
        async with self.hub.sessions() as session:
            decisions = await check_each(session, asked, self.hub.policy)
        return {row.id: decision.reasons for row, decision in zip(rows, decisions, strict=True)}

    async def _blocked_now(self, row: OutboxMessage) -> tuple[str, ...]:
        """The blocks against a row's recipient now: one committed since its batch was
        gated stops it too."""
        recipient = Recipient(row.customer_id, row.channel, row.recipient)
        async with self.hub.sessions() as session:
            return await standing_blocks(session, recipient, row.purpose)

    async def _retry(self, row: OutboxMessage, error: str) -> None:
        if row.attempts >= self.hub.settings.outbox_max_attempts:
            await self._record(
                row,
                "failed",
                last_error=error,
                summary=f"failed after {row.attempts} attempts: {error}",
            )
            return
        delay = min(BACKOFF_SECONDS * 2 ** (row.attempts - 1), MAX_BACKOFF_SECONDS)
        await self._record(
            row, "queued", last_error=error, next_attempt_at=utcnow() + timedelta(seconds=delay)
        )

    async def _record(
        self,
        row: OutboxMessage,
        status: str,
        summary: str | None = None,
        block_reason: str | None = None,
        **values: Any,
    ) -> None:
        """Record an outcome, only while this dispatcher still holds the claim; a refusing
        recipient is blocked in the same transaction."""
        mine = and_(
            OutboxMessage.id == row.id,
            OutboxMessage.status == "sending",
            OutboxMessage.claimed_by == self.name,
            OutboxMessage.attempts == row.attempts,
        )
        async with self.hub.work() as work:
            recorded = await work.session.scalar(
                update(OutboxMessage.__table__)
                .where(mine)
                .values(status=status, lease_until=None, **values)
                .returning(OutboxMessage.id)
            )
            if recorded is None:
                log.warning("outbox row %s was reclaimed by another dispatcher", row.id)
                return
            # The claimed row, detached, now says what was recorded (for the history entry).
            for name, value in {"status": status, "lease_until": None, **values}.items():
                setattr(row, name, value)
            if block_reason is not None and row.channel in ADDRESS_KIND:
                await do_add_block(
                    work,
                    None,
                    ADDRESS_KIND[row.channel],
                    row.recipient,
                    block_reason,
                    self.hub.settings.default_region,
                    note=f"refused by the provider: {values.get('last_error')}",
                )
            if summary is not None:
                await add_outcome_to_history(work, row, summary)
                work.emit(
                    f"outbox.{status}",
                    outbox_id=row.id,
                    channel=row.channel,
                    customer_id=row.customer_id,
                )


def outbound(row: OutboxMessage) -> Outbound:
    return Outbound(
        channel=row.channel,  # type: ignore[arg-type]
        recipient=row.recipient,
        text=row.payload.get("text", ""),
        subject=row.payload.get("subject"),
        html=row.payload.get("html"),
        headers=row.payload.get("headers", {}),
        idempotency_key=row.idempotency_key,
        metadata={
            "outbox_id": row.id,
            "purpose": row.purpose,
            "customer_id": row.customer_id,
            "conversation_id": row.conversation_id,
        },
    )
