"""Where the IMAP intake's time goes: its steps timed, and a cProfile of the event loop.

`timed_steps()` wraps, for the length of the block, the functions
the intake reaches through module globals (`keep_raw_batch`, `waiting_raw`,
`settled_unacknowledged`, `mark_acknowledged` in `channels.email.imap_intake`;
`parse_mail`, `to_inbound`, `ingest_raw` in `channels.email.inbound`; `ingest`
in `hub.mailboxes`) with wall-clock timers, and `TimedClient` times the IMAP calls
inside their worker thread. Nothing in `channels/` or `hub/` is changed: the
originals are put back when the block ends. What no step covers (thread hops,
the event loop, opening sessions) is printed as the rest.

`cprofiled()` runs cProfile on the event loop's thread only: time spent in
imapclient's and aiosqlite's worker threads shows there as waiting in the
loop's `select`.
"""

from __future__ import annotations

import cProfile
import inspect
import io
import pstats
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from imapclient import IMAPClient

import channels.email.imap_intake
import channels.email.inbound
import hub.mailboxes

ACCEPT = "take: ingest_raw (one unit of work, marks it ingested)"
INGEST = "  of which ingest (its statements)"
UNIT = "  of which the unit of work (session, BEGIN, COMMIT)"
WALL = "read_new + take_waiting + acknowledge, wall clock"
# (module, function, label), in the order the intake calls them per batch or message.
STEPS: tuple[tuple[Any, str, str], ...] = (
    (channels.email.imap_intake, "keep_raw_batch", "read: keep_raw_batch (raw rows + state)"),
    (channels.email.imap_intake, "waiting_raw", "take: waiting_raw (a batch of kept rows)"),
    (channels.email.inbound, "parse_mail", "take: parse_mail"),
    (channels.email.inbound, "to_inbound", "take: to_inbound (quote folding)"),
    (channels.email.inbound, "ingest_raw", ACCEPT),
    (hub.mailboxes, "ingest", INGEST),
    (channels.email.imap_intake, "settled_unacknowledged", "acknowledge: find settled rows"),
    (channels.email.imap_intake, "mark_acknowledged", "acknowledge: mark them"),
)
IMAP_CALLS = {
    "select_folder": "IMAP SELECT (worker thread)",
    "search": "IMAP UID SEARCH (worker thread)",
    "fetch": "IMAP UID FETCH BODY.PEEK[] (worker thread)",
    "add_flags": "IMAP UID STORE +FLAGS \\Seen (worker thread)",
}


@dataclass
class Steps:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, label: str, elapsed: float) -> None:
        self.seconds[label] += elapsed
        self.calls[label] += 1

    def wrap(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(function):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await function(*args, **kwargs)
                finally:
                    self.add(label, time.perf_counter() - started)

            return timed_async

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - started)

        return timed

    def render(self, wall: float, messages: int) -> list[str]:
        """One row per step, nested ones indented, then what no step covers."""
        seconds = defaultdict(float, self.seconds)
        seconds[UNIT] = seconds[ACCEPT] - seconds[INGEST]
        labels = [*IMAP_CALLS.values(), *(label for _, _, label in STEPS)]
        labels.insert(labels.index(INGEST) + 1, UNIT)
        covered = sum(seconds[label] for label in labels if not label.startswith(" "))
        rows = [(label, self.calls.get(label, 0), seconds[label]) for label in labels]
        rows += [("rest (thread hops, event loop)", 0, wall - covered), (WALL, 1, wall)]
        lines = [f"{'step':<52}  {'calls':>6}  {'total s':>8}  {'ms/msg':>7}  {'share':>6}"]
        for label, calls, spent in rows:
            lines.append(
                f"{label:<52}  {calls or '':>6}  {spent:>8.2f}  "
                f"{spent / messages * 1e3:>7.3f}  {spent / wall:>6.1%}"
            )
        return lines


class TimedClient:
    """An IMAPClient whose calls the intake makes are timed where they run."""

    def __init__(self, client: IMAPClient, steps: Steps) -> None:
        self._client = client
        self._steps = steps

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        label = IMAP_CALLS.get(name)
        return self._steps.wrap(label, attribute) if label else attribute


@contextmanager
def timed_steps() -> Iterator[Steps]:
    """Time the intake's steps while the block runs; the originals come back after."""
    steps = Steps()
    originals = [(module, name, getattr(module, name)) for module, name, _ in STEPS]
    for module, name, label in STEPS:
        setattr(module, name, steps.wrap(label, getattr(module, name)))
    try:
        yield steps
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


def render_statements(sent: list[str], messages: int) -> str:
    """How many statements the intake sent per message, by their first word."""
    kinds = Counter(statement.split(None, 1)[0].upper() for statement in sent)
    each = ", ".join(f"{kind} {number / messages:.1f}" for kind, number in kinds.most_common())
    return f"statements per message: {len(sent) / messages:.1f} ({each}; COMMITs not counted)"


@contextmanager
def cprofiled(top: int = 30) -> Iterator[io.StringIO]:
    """cProfile the block on this thread; the top functions by own time land in the buffer."""
    profile = cProfile.Profile()
    report = io.StringIO()
    profile.enable()
    try:
        yield report
    finally:
        profile.disable()
        stats = pstats.Stats(profile, stream=report)
        stats.sort_stats("tottime").print_stats(top)
        # The project's own functions; a coroutine's cumulative time leaves out its awaits.
        stats.sort_stats("cumulative").print_stats(r"/(channels|hub)/", top)
