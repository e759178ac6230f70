"""Group commit: what concurrent callers hand in is done together, in one transaction.

While one batch runs, callers that arrive queue up; when it ends, the first of
them leads the next batch, with everything queued by then (up to `limit`).
Without load a batch is one item, done at once, as if there were no queue;
under load the fixed costs of a transaction (a connection, BEGIN, COMMIT, the
routing lock) are shared by all of a batch, and a process runs one such
transaction at a time instead of many that wait on each other's locks.

The leader is a caller's own task: nothing runs in the background, so the
queue needs no start or stop and lives in whatever event loop calls it. Each
caller returns when its own item is done, as it would alone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
# What a batch returns per item, in order: its result, or the error it alone met.
Runner = Callable[[list[Item]], Awaitable[list["Result | Exception"]]]


@dataclass(eq=False)
class _Entry(Generic[Item, Result]):
    item: Item
    # Resolved when the item is done, or earlier when its caller is to lead a batch.
    turn: asyncio.Future[None]
    state: str = "queued"  # queued, running, done (or dropped: its caller is gone)
    outcome: Result | Exception | None = field(default=None)

    def finish(self, outcome: Result | Exception) -> None:
        self.state, self.outcome = "done", outcome
        if not self.turn.done():
            self.turn.set_result(None)


class GroupCommit(Generic[Item, Result]):
    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._queue: deque[_Entry[Item, Result]] = deque()
        self._busy = False

    async def submit(self, item: Item, run: Runner[Item, Result]) -> Result:
        """Have `item` done by `run` (alone or in a batch with others); its result or error."""
        entry: _Entry[Item, Result] = _Entry(item, asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        if self._busy:
            try:
                await entry.turn
            except asyncio.CancelledError:
                self._leave(entry)
                raise
        else:
            self._busy = True
        if entry.state != "done":
            await self._lead(run, entry)
        if isinstance(entry.outcome, Exception):
            raise entry.outcome
        return entry.outcome  # type: ignore[return-value]  # done: a Result

    async def _lead(self, run: Runner[Item, Result], own: _Entry[Item, Result]) -> None:
        batch = self._take()
        try:
            outcomes = await run([entry.item for entry in batch])
            for entry, outcome in zip(batch, outcomes, strict=True):
                entry.finish(outcome)
        finally:
            # Cancelled midway (the transaction rolled back): the rest go again, first,
            # but for the leader's own item and those of callers gone meanwhile.
            for entry in reversed(batch):
                if entry.state == "running" and entry is not own and not entry.turn.cancelled():
                    entry.state = "queued"
                    self._queue.appendleft(entry)
            self._pass_on()

    def _take(self) -> list[_Entry[Item, Result]]:
        batch: list[_Entry[Item, Result]] = []
        while self._queue and len(batch) < self.limit:
            entry = self._queue.popleft()
            if entry.turn.cancelled():  # its caller is gone (`_leave` finds it dropped)
                entry.state = "dropped"
                continue
            entry.state = "running"
            batch.append(entry)
        return batch

    def _pass_on(self) -> None:
        """The first queued caller leads next; with nobody queued, the next caller leads."""
        for entry in self._queue:
            # A turn already cancelled is a caller on its way out (`_leave`).
            if not entry.turn.done():
                entry.turn.set_result(None)
                return
        self._busy = False

    def _leave(self, entry: _Entry[Item, Result]) -> None:
        """A queued caller was cancelled: its item is dropped, and if it was to lead, the
        next leads instead. An item already in a running batch is done all the same."""
        if entry.state != "queued":
            return
        self._queue.remove(entry)
        if not entry.turn.cancelled():  # it had been told to lead
            self._pass_on()
