"""The dispatcher: takes due outbox rows, asks the gate again, hands them to senders.

The gate is asked for each claimed batch at once (up to `batch` rows, one
`check_many` per purpose), right before its rows are sent one by one, and
asked again for the rest of the batch whenever its answers are older than
`FRESH_SECONDS`: no message leaves on an answer older than that, so an
unsubscribe, STOP or bounce committed while a batch goes out stops the
messages that leave later. With a fast sender that is one question for
many messages; with a slow one (Twilio, a few hundred ms a request), one
before each message. Asking before every message instead cost as much CPU
as all the rest of an e-mail (in-process: 4.5 ms an e-mail against 2.3).

A claim is committed (status `sending`, a lease, the claimer's name, one
more attempt) before the sender is called, and the outcome is committed
after: the outcomes of messages sent within `RECORD_SECONDS` of each other
are committed together, in one transaction: an e-mail cost ~30 % more CPU
with a transaction each. A claimer that dies leaves its rows
`sending` until the lease runs out; then any dispatcher reclaims them, and
sends again what had gone out unrecorded: at most the last `RECORD_SECONDS`
of its sending (with a provider as slow as Twilio, one message). An outcome
that blocks a recipient (a refusal) is committed before the next message is
sent, so the next one to that recipient is stopped. An outcome is only
recorded by the claimer that still holds the row, so a row is never recorded
twice.

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
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update

from hub.blocks import block_refused_recipient
from hub.context import Hub, Work
from hub.delivery import (
    PermanentDeliveryError,
    RecipientRefusedError,
    Sender,
    UnknownDeliveryError,
)
from hub.gate import Recipient, check_each
from hub.models import OutboxMessage, utcnow
from hub.outbox import add_outcomes_to_history
from hub.values import Outbound

log = logging.getLogger(__name__)

BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 6 * 3600
# No message leaves on a gate answer older than this.
FRESH_SECONDS = 0.1
# Outcomes of messages sent within this long of the first unrecorded one are
# committed together: what a crash can send twice.
RECORD_SECONDS = 0.05


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
        gated, stale = time.monotonic(), False
        unrecorded: list[Outcome] = []
        since = 0.0
        for index, row in enumerate(rows):
            if stale or time.monotonic() - gated > FRESH_SECONDS:
                refusals = await self._gate(rows[index:])
                gated, stale = time.monotonic(), False
            if not unrecorded:
                since = time.monotonic()
            outcome = await self.deliver(row, refusals[row.id])
            unrecorded.append(outcome)
            # A recipient the provider refused is blocked at once, and the answers the
            # rest of the batch has are out of date.
            stale = outcome.block_reason is not None
            if stale or time.monotonic() - since >= RECORD_SECONDS:
                await self._record(unrecorded)
                unrecorded = []
        if unrecorded:
            await self._record(unrecorded)
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

    async def deliver(self, row: OutboxMessage, reasons: tuple[str, ...]) -> Outcome:
        """Send one claimed row, or not for the gate's `reasons`; what to record."""
        if reasons:
            return Outcome(
                row,
                "blocked",
                {"blocked_reasons": list(reasons)},
                summary="blocked: " + ", ".join(reasons),
            )
        sender = self.senders.get(row.channel)
        if sender is None:
            return self._retry(row, f"no sender is configured for channel {row.channel}")
        try:
            receipt = await asyncio.wait_for(sender.send(outbound(row)), self.send_seconds)
        except TimeoutError:
            # Cut off mid-send, the message may have gone out: never send it blindly again.
            return Outcome(
                row,
                "unknown",
                {"last_error": "the sender did not finish in time"},
                summary="delivery unknown: the sender did not finish in time",
            )
        except RecipientRefusedError as error:
            return Outcome(
                row,
                "failed",
                {"last_error": str(error)},
                summary=f"failed: {error}",
                block_reason=error.block_reason,
            )
        except PermanentDeliveryError as error:
            return Outcome(row, "failed", {"last_error": str(error)}, summary=f"failed: {error}")
        except UnknownDeliveryError as error:
            return Outcome(
                row, "unknown", {"last_error": str(error)}, summary=f"delivery unknown: {error}"
            )
        except Exception as error:  # see the module docstring: any error is retried
            return self._retry(row, f"{type(error).__name__}: {error}")
        return Outcome(
            row,
            "sent",
            {"provider_id": receipt.provider_id, "sent_at": utcnow()},
            summary=f"sent ({receipt.provider_id})",
        )

    async def _gate(self, rows: list[OutboxMessage]) -> dict[int, tuple[str, ...]]:
        """The gate's reasons against each claimed row (none: it may go), asked for the
        whole claim at once, a query or few per purpose instead of per row."""
        asked = [(Recipient(r.customer_id, r.channel, r.recipient), r.purpose) for r in rows]
        async with self.hub.sessions() as session:
            decisions = await check_each(session, asked, self.hub.policy)
        return {row.id: decision.reasons for row, decision in zip(rows, decisions, strict=True)}

    def _retry(self, row: OutboxMessage, error: str) -> Outcome:
        if row.attempts >= self.hub.settings.outbox_max_attempts:
            return Outcome(
                row,
                "failed",
                {"last_error": error},
                summary=f"failed after {row.attempts} attempts: {error}",
            )
        delay = min(BACKOFF_SECONDS * 2 ** (row.attempts - 1), MAX_BACKOFF_SECONDS)
        return Outcome(
            row,
            "queued",
            {"last_error": error, "next_attempt_at": utcnow() + timedelta(seconds=delay)},
        )

    async def _record(self, outcomes: list[Outcome]) -> None:
        """Record outcomes in one transaction, each only while this dispatcher still
        holds its claim; a refusing recipient is blocked in the same transaction."""
        async with self.hub.work() as work:
            held = await self._still_held(work, [outcome.row for outcome in outcomes])
            kept = [outcome for outcome in outcomes if outcome.row.id in held]
            for outcome in outcomes:
                if outcome.row.id not in held:
                    log.warning("outbox row %s was reclaimed by another dispatcher", outcome.row.id)
            await _update_rows(work, kept)
            for outcome in kept:
                # The claimed row, detached, now says what was recorded (for the history).
                for name, value in outcome.changes.items():
                    setattr(outcome.row, name, value)
                if outcome.block_reason is not None:
                    await block_refused_recipient(
                        work,
                        outcome.row.channel,
                        outcome.row.recipient,
                        outcome.block_reason,
                        self.hub.settings.default_region,
                        outcome.row.last_error,
                    )
            await add_outcomes_to_history(
                work, [(each.row, each.summary) for each in kept if each.summary is not None]
            )
            for outcome in kept:
                if outcome.summary is not None:
                    row = outcome.row
                    work.emit(
                        f"outbox.{outcome.status}",
                        outbox_id=row.id,
                        channel=row.channel,
                        customer_id=row.customer_id,
                    )

    async def _still_held(self, work: Work, rows: list[OutboxMessage]) -> set[int]:
        """Which rows this dispatcher still holds, at the attempt it claimed them for,
        locked until the commit."""
        claimed = {row.id: row.attempts for row in rows}
        statement = (
            select(OutboxMessage.id, OutboxMessage.attempts)
            .where(
                OutboxMessage.id.in_(sorted(claimed)),
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_by == self.name,
            )
            .with_for_update()
        )
        found = await work.session.execute(statement)
        return {row_id for row_id, attempts in found if claimed[row_id] == attempts}


@dataclass(slots=True)
class Outcome:
    """What to record of one claimed row: its new status and the columns that change."""

    row: OutboxMessage
    status: str
    values: dict[str, Any] = field(default_factory=dict)
    summary: str | None = None  # a final outcome's history entry and event
    block_reason: str | None = None  # the provider refused the recipient: block them

    @property
    def changes(self) -> dict[str, Any]:
        return {"status": self.status, "lease_until": None, **self.values}


async def _update_rows(work: Work, outcomes: list[Outcome]) -> None:
    """Write the outcomes to their rows: one UPDATE, run for many rows, for each set of
    columns that change."""
    alike: dict[tuple[str, ...], list[Outcome]] = {}
    for outcome in outcomes:
        alike.setdefault(tuple(sorted(outcome.changes)), []).append(outcome)
    for columns, group in alike.items():
        await work.session.execute(
            update(OutboxMessage.__table__)
            .where(OutboxMessage.id == bindparam("row_id"))
            .values({column: bindparam(f"new_{column}") for column in columns}),
            [
                {"row_id": each.row.id, **{f"new_{k}": v for k, v in each.changes.items()}}
                for each in group
            ],
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
