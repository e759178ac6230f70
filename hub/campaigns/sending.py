"""Sending a campaign: one outbox row per recipient, each sent exactly once, resumable.

One sender holds a campaign at a time (`hub.campaigns.hold`). The holder runs

    producer   pages through the segment by customer id: reads a page, asks
               the gate about it (`check_many`) and renders it (templates
               compiled once), then writes in ONE transaction the outbox rows
               (key `campaign:<id>:<customer id>`, `queued`, or `blocked` with
               the reasons), one history entry per message, and the cursor
               `enqueued_through`, moved only from where this holder left it.
               Redoing a page after a crash inserts nothing twice.
    workers    one per connection: claim a batch of the campaign's queued rows,
               ask the gate again (for the whole batch, or at a set rate for
               each second's worth of it, so that a block arriving meanwhile
               stops the later messages), send row by row at the configured
               rate, and record outcomes in group commits.

Live traffic first: before each message, while it renders and before it
records outcomes, a campaign waits for a moment without HTTP requests or
chat frames in flight in its process (`hub.live_traffic`), so that it does
not slow the agents' and customers' requests down.

Progress is the per-recipient outbox, never a cursor that moves before the
server accepted a message. A row moves

    queued ──claim──> sending ──hand-off──> handed ──> sent | failed | unknown | queued (4xx)
                         │                    │
                         │ crash: back to     │ crash: `unknown` (it may have gone
                         │ queued, resent     │ out), never sent again
                         └── cancel: cancelled

The hand-off is the commit point. It is one UPDATE of that row, conditional
on this worker still holding it as `sending` (so a cancelled or reclaimed row
is never handed), made at the last moment before the message can be
accepted: for SMTP once the whole content is on the wire but not its end of
data, CRLF.CRLF, which is written the moment the hand-off's COMMIT is (see
`SmtpSender.send_staged` and `handover`); for other senders just before
`send`. A server discards a DATA cut off before its end, so a row not yet
handed is safe to send again after a crash; a handed one is not, so the
holder that takes over marks it `unknown`. Nothing is ever sent twice. A kill
loses a message (as `unknown`, never received) only between the COMMIT's
write and the end of data's, microseconds apart on PostgreSQL (on SQLite,
the UPDATE's way back from its thread); tests/test_campaign_kills.py
measures what it costs. Outcomes after the hand-off are recorded in groups
(`handover.OutcomeRecorder`): losing them to a crash only turns `sent` into
`unknown` (received, but not known to be).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from hub.campaigns.approval import compile_content
from hub.campaigns.content import CompiledContent
from hub.campaigns.handover import (
    Handover,
    HandoverRefusedError,
    Outcome,
    OutcomeRecorder,
    recover_rows,
)
from hub.campaigns.hold import CampaignHold, HoldLostError
from hub.campaigns.messages import build_entry, build_row, outbound_of
from hub.campaigns.preview import recipient_of
from hub.campaigns.segments import Member, find_members
from hub.context import Hub
from hub.db import insert_for
from hub.delivery import (
    PermanentDeliveryError,
    RecipientRefusedError,
    Sender,
    UnknownDeliveryError,
)
from hub.gate import Recipient, check_many
from hub.leases import holder_name
from hub.models import Campaign, Interaction, OutboxMessage, utcnow

log = logging.getLogger(__name__)

PAGE = 500  # recipients the producer writes per transaction
BATCH = 100  # rows a worker claims at once
AHEAD = 4 * PAGE  # queued rows the producer keeps ready, at most, beyond the claimed ones
YIELD_EVERY = 20  # recipients the producer renders between yields to the event loop
IDLE_SECONDS = 0.5
MAX_IDLE_SECONDS = 30.0
BACKOFF_SECONDS = 30
GATE_SECONDS = 1.0  # at a set rate, the gate is asked again for each second's worth of rows


class Pacer:
    """At most `rate` messages per second across every worker (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(self.next_at, now)
        self.next_at = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class CampaignSender:
    """Runs one campaign to its end (or until cancelled) over `senders`, one per connection."""

    def __init__(
        self,
        hub: Hub,
        senders: Sequence[Sender],
        *,
        name: str | None = None,
        rate: float | None = None,
        page: int = PAGE,
        batch: int = BATCH,
        backoff: float = BACKOFF_SECONDS,
    ) -> None:
        if not senders:
            raise ValueError("a campaign needs at least one sender")
        self.hub = hub
        self.senders = list(senders)
        self.name = name or holder_name()
        rate = hub.settings.campaign_rate if rate is None else rate
        self.pacer = Pacer(rate)
        # A block that arrives mid-campaign must stop the later messages to that
        # recipient: a batch sent slowly is gated again in slices of about a second
        # (the rate is shared by every connection).
        share = rate * GATE_SECONDS / len(self.senders)
        self.gate_every = max(1, min(batch, int(share))) if rate > 0 else batch
        self.backoff = backoff
        self.page = page
        self.batch = batch
        self.lease = timedelta(seconds=hub.settings.outbox_lease_seconds)
        self.hold = CampaignHold(hub, self.name, self.lease)
        self.stop = asyncio.Event()
        self.produced = asyncio.Event()
        self.backlog = 0  # rows queued by the producer and not yet claimed
        self.producing = True
        self.recorder = OutcomeRecorder(hub)

    async def run(self, campaign_id: int) -> None:
        """Send the campaign; raises ConflictError when it is not sending or held elsewhere."""
        campaign = await self.hold.take(campaign_id)
        await recover_rows(self.hub, campaign.id, self.name)
        await self.hold.wait_for_schedule(campaign, self.stop)
        content = compile_content(campaign)
        recorder = asyncio.create_task(self.recorder.run(), name="campaign recorder")
        keeper = asyncio.create_task(self.hold.keep(campaign.id, self.stop), name="campaign hold")
        tasks = [asyncio.create_task(self._produce(campaign, content), name="campaign producer")]
        tasks += [
            asyncio.create_task(self._work(campaign, sender, n), name=f"campaign worker {n}")
            for n, sender in enumerate(self.senders)
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            # Whatever ended first, the others finish the message in hand and stop.
            self.stop.set()
            await asyncio.wait(tasks)
            keeper.cancel()
            await self.recorder.finish()
            await recorder
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await self.hold.release(campaign.id)
        for task in tasks:
            error = task.exception()
            if isinstance(error, HoldLostError):
                log.warning("campaign %s: cancelled, or another sender holds it", campaign_id)
            elif error is not None:
                raise error

    # The producer: the segment, page by page, into the outbox.

    async def _produce(self, campaign: Campaign, content: CompiledContent) -> None:
        try:
            while not self.stop.is_set():
                while self.backlog >= AHEAD and not self.stop.is_set():
                    self.produced.clear()
                    await self._pause()
                await self.hub.live.gap()
                if self.stop.is_set() or not await self._produce_page(campaign, content):
                    return
                self.produced.set()
        finally:
            self.producing = False
            self.produced.set()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.produced.wait(), IDLE_SECONDS)

    async def _produce_page(self, campaign: Campaign, content: CompiledContent) -> bool:
        """Queue the next page of recipients; False when the segment is exhausted.

        The page is read, gated and rendered before the write transaction, which then
        only inserts: on SQLite a writer holds the one write lock, which the workers'
        hand-offs wait for.
        """
        async with self.hub.sessions() as session:
            state = await session.get(Campaign, campaign.id)
            if state is None or state.holder != self.name or state.status != "sending":
                raise HoldLostError
            if state.enqueue_done:
                return False
            after = state.enqueued_through
            members = await find_members(
                session, campaign.segment, campaign.channel, after, self.page
            )
            reachable = [m for m in members if m.address]
            recipients = [recipient_of(campaign.channel, m) for m in reachable]
            decisions = await check_many(session, recipients, "marketing", self.hub.policy)
        rows, entries = await self._rows(campaign, content, reachable, decisions)
        async with self.hub.work() as work:
            # Only from where this holder left off: the cursor and the rows move together.
            moved = await work.session.execute(
                update(Campaign)
                .where(
                    Campaign.id == campaign.id,
                    Campaign.holder == self.name,
                    Campaign.status == "sending",
                    Campaign.enqueued_through == after,
                )
                .values(
                    enqueued_through=members[-1].customer_id if members else after,
                    enqueue_done=not members,
                )
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:
                raise HoldLostError
            if rows:
                connection = await work.session.connection()
                insert = insert_for(work.session)
                await connection.execute(
                    insert(OutboxMessage.__table__).on_conflict_do_nothing(
                        index_elements=["idempotency_key"]
                    ),
                    rows,
                )
                await connection.execute(
                    insert(Interaction.__table__).on_conflict_do_nothing(
                        index_elements=["channel", "external_id"]
                    ),
                    entries,
                )
        self.backlog += sum(1 for row in rows if row["status"] == "queued")
        return bool(members)

    async def _rows(
        self,
        campaign: Campaign,
        content: CompiledContent,
        members: list[Member],
        decisions: list[Any],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        now = utcnow()
        rows, entries = [], []
        for n, (member, decision) in enumerate(zip(members, decisions, strict=True)):
            if n % YIELD_EVERY == 0:
                # The workers go on only when the loop is free: rendering a whole page
                # in one go would hold their messages back.
                await asyncio.sleep(0)
                await self.hub.live.gap()
            row = build_row(self.hub.settings, campaign, content, member, now)
            if not decision.allowed and row["status"] == "queued":
                row.update(status="blocked", blocked_reasons=list(decision.reasons))
            rows.append(row)
            entries.append(build_entry(campaign, member, row, now))
        return rows, entries

    # The workers: claim, gate, hand over, send.

    async def _work(self, campaign: Campaign, sender: Sender, number: int) -> None:
        worker = f"{self.name}/{number}"
        async with (
            self.hub.engine.connect() as connection,
            Handover(connection, worker) as handover,
        ):
            idle = IDLE_SECONDS
            while not self.stop.is_set():
                rows = await self._claim(campaign.id, worker)
                if rows:
                    idle = IDLE_SECONDS
                    await self._send_batch(rows, sender, handover)
                    continue
                if not self.producing and not await self._has_waiting(campaign.id):
                    return
                # Nothing due: the producer is behind, or rows wait for their retry.
                self.produced.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.produced.wait(), idle)
                if not self.producing:
                    idle = min(idle * 2, MAX_IDLE_SECONDS)

    async def _has_waiting(self, campaign_id: int) -> bool:
        """Rows still to be sent, including those in flight: a row whose outcome the
        recorder has not written yet may come back `queued` for a retry, so a worker
        that saw only `queued` rows would stop before a retry it still owes."""
        async with self.hub.sessions() as session:
            waiting = await session.scalar(
                select(func.count()).where(
                    OutboxMessage.campaign_id == campaign_id,
                    OutboxMessage.status.in_(("queued", "sending", "handed")),
                )
            )
        return bool(waiting)

    async def _claim(self, campaign_id: int, worker: str) -> list[dict[str, Any]]:
        now = utcnow()
        due = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.campaign_id == campaign_id,
                OutboxMessage.status == "queued",
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.id)
            .limit(self.batch)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(due.scalar_subquery()))
            .values(
                status="sending",
                lease_until=now + self.lease,
                claimed_by=worker,
                attempts=OutboxMessage.attempts + 1,
            )
            .returning(
                OutboxMessage.id,
                OutboxMessage.channel,
                OutboxMessage.recipient,
                OutboxMessage.customer_id,
                OutboxMessage.payload,
                OutboxMessage.attempts,
                OutboxMessage.idempotency_key,
            )
        )
        async with self.hub.work() as work:
            rows = [dict(row._mapping) for row in await work.session.execute(claim)]
        self.backlog = max(0, self.backlog - len(rows))
        self.produced.set()  # room for the producer
        return sorted(rows, key=lambda row: row["id"])

    async def _send_batch(
        self, rows: list[dict[str, Any]], sender: Sender, handover: Handover
    ) -> None:
        for start in range(0, len(rows), self.gate_every):
            if self.stop.is_set():
                return  # the rest stay `sending`: the next holder sends them
            await self._send_slice(rows[start : start + self.gate_every], sender, handover)

    async def _send_slice(
        self, rows: list[dict[str, Any]], sender: Sender, handover: Handover
    ) -> None:
        recipients = [Recipient(r["customer_id"], r["channel"], r["recipient"]) for r in rows]
        async with self.hub.sessions() as session:
            decisions = await check_many(session, recipients, "marketing", self.hub.policy)
        for row, decision in zip(rows, decisions, strict=True):
            if self.stop.is_set():
                return  # the rest stay `sending`: the next holder sends them
            if not decision.allowed:
                await self._blocked(row, decision.reasons)
                continue
            await self.hub.live.gap()  # live traffic first (`hub.live_traffic`)
            await self.pacer.wait()
            await self._send_one(row, sender, handover)

    async def _send_one(self, row: dict[str, Any], sender: Sender, handover: Handover) -> None:
        outbound = outbound_of(row)
        try:
            staged = getattr(sender, "send_staged", None)
            if staged is not None:
                receipt = await staged(outbound, lambda: handover.hand_before_end(row["id"]))
            else:
                await handover.hand(row["id"])
                receipt = await sender.send(outbound)
        except HandoverRefusedError:
            await self._refused(row)
        except RecipientRefusedError as error:
            await self._outcome(
                row,
                "failed",
                f"failed: {error}",
                last_error=str(error),
                block_reason=error.block_reason,
            )
        except PermanentDeliveryError as error:
            await self._outcome(row, "failed", f"failed: {error}", last_error=str(error))
        except UnknownDeliveryError as error:
            await self._outcome(row, "unknown", f"delivery unknown: {error}", last_error=str(error))
        except Exception as error:  # transient, or a bug: retried later, as the dispatcher does
            await self._retry(row, f"{type(error).__name__}: {error}")
        else:
            await self._outcome(
                row, "sent", None, provider_id=receipt.provider_id, sent_at=utcnow()
            )

    async def _refused(self, row: dict[str, Any]) -> None:
        """Nothing was sent. A recipient blocked since the slice was gated is recorded
        as blocked; a row cancelled or reclaimed meanwhile is not ours to touch."""
        recipient = Recipient(row["customer_id"], row["channel"], row["recipient"])
        async with self.hub.sessions() as session:
            [decision] = await check_many(session, [recipient], "marketing", self.hub.policy)
        if not decision.allowed:
            await self._blocked(row, decision.reasons)

    async def _blocked(self, row: dict[str, Any], reasons: Sequence[str]) -> None:
        summary = "blocked: " + ", ".join(reasons)
        await self._outcome(row, "blocked", summary, blocked_reasons=list(reasons))

    async def _retry(self, row: dict[str, Any], error: str) -> None:
        if row["attempts"] >= self.hub.settings.outbox_max_attempts:
            await self._outcome(
                row, "failed", f"failed after {row['attempts']} attempts: {error}", last_error=error
            )
            return
        delay = self.backoff * 2 ** (row["attempts"] - 1)
        await self._outcome(
            row,
            "queued",
            None,
            last_error=error,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
        )

    async def _outcome(
        self,
        row: dict[str, Any],
        status: str,
        summary: str | None,
        block_reason: str | None = None,
        **values: Any,
    ) -> None:
        await self.recorder.put(
            Outcome(
                row["id"],
                status,
                row["customer_id"],
                row["channel"],
                row["recipient"],
                values,
                summary,
                block_reason,
            )
        )
