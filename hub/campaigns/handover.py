"""The hand-off (a campaign's exactly-once commit point) and the outcome recorder.

`Handover.hand(row)` (or `hand_before_end`) is the only database work done
per message while a message is on its way, on a connection of its own, sent
to the driver directly (no ORM). It is conditional: a row cancelled or
reclaimed since this worker claimed it, or whose recipient was blocked since
the batch was gated, is refused (`HandoverRefusedError`), and nothing is sent.

On PostgreSQL the conditional UPDATE runs in a transaction of its own, and
`hand_before_end` returns once its COMMIT is written to the socket, before
the answer: the caller writes the message's end of data at once and only
then awaits the answer (`SmtpSender.send_staged`). So the two writes that
decide a message are microseconds apart. The database carries out a COMMIT
that arrived even when its sender has died since; one that never left
leaves the row `sending`, to be sent again. A kill loses a message only
between the two writes. With the answer awaited first, as before, the
window was the COMMIT's round trip and the event loop resuming the worker:
about one kill in three lost a message (tests/test_campaign_kills.py
measures it). On SQLite, whose statements run in a thread, the hand-off is
one autocommitted UPDATE, awaited: the window is its way back from that
thread. `hand`, for senders that send only after it (SMS), awaits the
COMMIT's answer, and its failure.

`OutcomeRecorder` writes outcomes in group commits (up to `FLUSH_ROWS`, or
every `FLUSH_SECONDS`), each only onto a row still in flight, so that a row
cancelled meanwhile stays cancelled and one a later holder marked `unknown`
stays unknown. Outcomes other than `sent` get a history entry; a recipient
refused by the provider is blocked with the reason it gave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.audit import record
from hub.blocks import block_refused_recipient
from hub.campaigns.messages import outcome_entry
from hub.context import Hub, Work
from hub.models import OutboxMessage
from hub.transports import drained

log = logging.getLogger(__name__)
FLUSH_ROWS = 100  # outcomes per group commit, at most
FLUSH_SECONDS = 0.05
FLUSH_TIMEOUT_SECONDS = 30.0


class HandoverRefusedError(Exception):
    """The row is no longer this worker's to send (cancelled, or reclaimed), or its
    recipient was blocked since the batch was gated."""


_MINE = "WHERE id = %s AND claimed_by = %s AND status IN ('sending', 'handed')"
# A block (unsubscribe, STOP, hard bounce, legal, manual; every scope counts for a
# campaign) committed after the batch was gated still stops the message: the
# hand-off, the commit point, refuses it in the same statement.
_UNBLOCKED = (
    "AND NOT EXISTS (SELECT 1 FROM blocks WHERE blocks.lifted_at IS NULL AND ("
    "(blocks.kind = CASE outbox.channel WHEN 'email' THEN 'email' ELSE 'phone' END "
    "AND blocks.value = outbox.recipient) "
    "OR (blocks.kind = 'customer' AND blocks.customer_id = outbox.customer_id)))"
)


class Handover:
    # Only constants are joined here; the values are bound.
    SQL: ClassVar[dict[str, str]] = {
        "sqlite": " ".join(("UPDATE outbox SET status = 'handed'", _MINE % ("?", "?"), _UNBLOCKED)),
        "postgresql": " ".join(
            ("UPDATE outbox SET status = 'handed'", _MINE % ("$1", "$2"), _UNBLOCKED)
        ),
    }

    def __init__(self, connection: AsyncConnection, worker: str) -> None:
        self.connection = connection
        self.worker = worker
        self.dialect = connection.dialect.name
        self._driver: Any = None
        self._cursor: Any = None  # SQLite's last, closed at the next hand-off
        self._answer: Awaitable[None] | None = None  # PostgreSQL's last COMMIT's

    async def __aenter__(self) -> Handover:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._settle()
        # The connection goes back to the pool: leave it as durable as it came.
        if self._driver is not None and self.dialect == "postgresql":
            try:
                await self._driver.execute("RESET synchronous_commit")
            except Exception:  # a broken connection: the pool must not hand it out again
                await self.connection.invalidate()

    async def hand(self, row_id: int) -> None:
        """Hand the row over, committed, or refuse (`HandoverRefusedError`): for a sender
        that sends after this returns."""
        commit = await self._hand_over(row_id)
        if commit is not None:
            await commit

    async def hand_before_end(self, row_id: int) -> Awaitable[None] | None:
        """Hand the row over, or refuse: for `SmtpSender.send_staged`, which writes the end
        of data the moment this returns. On PostgreSQL that is with the COMMIT written
        and its answer to come, which the caller awaits after the end of data (the next
        hand-off would too); a COMMIT that fails then is only logged, since the message
        is out: the outcome recorded next decides the row (the recorder writes onto a
        row still `sending` as onto one `handed`)."""
        commit = await self._hand_over(row_id)
        if commit is None:
            return None
        # A task, so that both the caller and the next `_settle` may await it.
        self._answer = asyncio.ensure_future(_logged(commit, row_id))
        return self._answer

    async def _hand_over(self, row_id: int) -> _Begun | None:
        """The conditional UPDATE; on PostgreSQL, its COMMIT written (and returned, its
        answer to come), on SQLite autocommitted."""
        driver = await self._connect()
        await self._settle()
        if self.dialect != "postgresql":
            self._cursor = await driver.execute(self.SQL["sqlite"], (row_id, self.worker))
            if self._cursor.rowcount != 1:
                raise HandoverRefusedError(f"outbox row {row_id} is no longer {self.worker}'s")
            return None
        await driver.execute("BEGIN")
        try:
            status = await driver.execute(self.SQL["postgresql"], row_id, self.worker)
        except BaseException:
            with contextlib.suppress(Exception):
                await driver.execute("ROLLBACK")
            raise
        if int(status.split()[-1]) != 1:
            await driver.execute("ROLLBACK")
            raise HandoverRefusedError(f"outbox row {row_id} is no longer {self.worker}'s")
        commit = _Begun(driver.execute("COMMIT"))
        # The transport writes at once unless the socket is full; the end of data must
        # not leave before the COMMIT does (asyncpg has no public accessor for it).
        if not await drained(driver._transport, FLUSH_TIMEOUT_SECONDS):
            # The end of data is not written: the row stays `sending`, to be sent again.
            raise TimeoutError(f"the hand-off of outbox row {row_id} did not leave")
        return commit

    async def _settle(self) -> None:
        """Await the last COMMIT's answer, if not yet awaited (by the caller or here)."""
        answer, self._answer = self._answer, None
        if answer is not None:
            await answer
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            await cursor.close()

    async def _connect(self) -> Any:
        if self._driver is None:
            raw = await self.connection.get_raw_connection()
            self._driver = raw.driver_connection
            if self.dialect == "postgresql":
                # The hand-off must outlive this process, not a crash of the database
                # server: it does not wait for the WAL flush, as SQLite's
                # synchronous=NORMAL does not. Its commit is visible to every other
                # session, the holder that takes over included, at once.
                await self._driver.execute("SET synchronous_commit TO off")
        return self._driver


class _Begun(Awaitable[Any]):
    """A coroutine run now up to its first wait, the rest when awaited (as Python 3.12's
    eager tasks do): asyncpg writes a query to its socket in that first step."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self._coroutine = coroutine
        self._done, self._result, self._waiting_on = False, None, None
        try:
            self._waiting_on = coroutine.send(None)
        except StopIteration as stop:
            self._done, self._result = True, stop.value

    def __await__(self) -> Generator[Any, Any, Any]:
        if self._done:
            return self._result
        waiting_on = self._waiting_on
        while True:  # what `await` does, but starting from the wait already begun
            try:
                sent = yield waiting_on
            except BaseException as error:  # thrown in by the task: passed on
                try:
                    waiting_on = self._coroutine.throw(error)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting_on = self._coroutine.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _logged(commit: _Begun, row_id: int) -> None:
    """The COMMIT's answer, a failure logged (`Handover.hand_before_end`)."""
    try:
        await commit
    except Exception as error:
        log.warning("the hand-off of outbox row %d failed after its end of data: %s", row_id, error)


@dataclass
class Outcome:
    row_id: int
    status: str
    customer_id: int | None
    channel: str
    recipient: str
    values: dict[str, Any] = field(default_factory=dict)
    summary: str | None = None  # a history entry, for outcomes other than sent
    block_reason: str | None = None


_LAST = Outcome(0, "", None, "", "")


class OutcomeRecorder:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.outcomes: asyncio.Queue[Outcome] = asyncio.Queue()

    async def put(self, outcome: Outcome) -> None:
        await self.outcomes.put(outcome)

    async def finish(self) -> None:
        """Ask `run` to write what it has and end."""
        await self.outcomes.put(_LAST)

    async def run(self) -> None:
        finished = False
        while not finished:
            group = [await self.outcomes.get()]
            deadline = time.monotonic() + FLUSH_SECONDS
            while len(group) < FLUSH_ROWS:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    group.append(await asyncio.wait_for(self.outcomes.get(), left))
                except TimeoutError:
                    break
            finished = any(o is _LAST for o in group)
            await self.hub.live.gap()  # live traffic first (`hub.live_traffic`)
            await self._flush([o for o in group if o is not _LAST])

    async def _flush(self, group: list[Outcome]) -> None:
        if not group:
            return
        by_kind: dict[tuple[str, tuple[str, ...]], list[Outcome]] = {}
        for outcome in group:
            kind = (outcome.status, tuple(sorted(outcome.values)))
            by_kind.setdefault(kind, []).append(outcome)
        table = OutboxMessage.__table__
        async with self.hub.work() as work:
            connection = await work.session.connection()
            for (status, names), outcomes in by_kind.items():
                statement = (
                    update(table)
                    .where(
                        table.c.id == bindparam("row_id"),
                        or_(table.c.status == "sending", table.c.status == "handed"),
                    )
                    .values(
                        status=status, lease_until=None, **{n: bindparam(f"v_{n}") for n in names}
                    )
                )
                parameters = [
                    {"row_id": o.row_id, **{f"v_{n}": o.values[n] for n in names}} for o in outcomes
                ]
                await connection.execute(statement, parameters)
            for outcome in group:
                await self._side_effects(work, outcome)

    async def _side_effects(self, work: Work, outcome: Outcome) -> None:
        if outcome.block_reason is not None:
            await block_refused_recipient(
                work,
                outcome.channel,
                outcome.recipient,
                outcome.block_reason,
                self.hub.settings.default_region,
                outcome.values.get("last_error"),
            )
        if outcome.summary is not None and outcome.customer_id is not None:
            entry = outcome_entry(
                outcome.customer_id, outcome.channel, outcome.recipient, None, outcome.summary
            )
            work.session.add(entry)


async def recover_rows(hub: Hub, campaign_id: int, holder: str) -> None:
    """Rows a dead holder left, for the new holder: handed ones may have gone out
    (`unknown`, never sent again), the rest never did (`queued` again)."""
    async with hub.work() as work:
        mine = OutboxMessage.campaign_id == campaign_id
        handed = list(
            await work.session.scalars(
                select(OutboxMessage).where(mine, OutboxMessage.status == "handed")
            )
        )
        for row in handed:
            row.status = "unknown"
            row.lease_until = None
            row.last_error = (
                "the sender stopped while handing this message over; it may have gone "
                "out, so it is not sent again"
            )
            if row.customer_id is not None:
                summary = "delivery unknown: " + row.last_error
                work.session.add(
                    outcome_entry(row.customer_id, row.channel, row.recipient, campaign_id, summary)
                )
        requeued = await work.session.execute(
            update(OutboxMessage)
            .where(mine, OutboxMessage.status == "sending")
            .values(status="queued", lease_until=None, claimed_by=None)
            .execution_options(synchronize_session=False)
        )
        if handed or requeued.rowcount:
            record(
                work.session,
                None,
                "campaign.resumed",
                "campaign",
                campaign_id,
                unknown=len(handed),
                requeued=requeued.rowcount,
                holder=holder,
            )
