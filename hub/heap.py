"""The start-up heap, set aside from the garbage collector once the hub has started.

A full collection (generation 2) walks every container object in the process.
A started hub holds ~170,000 of them that live as long as it does (modules,
SQLAlchemy's mappers, FastAPI's routes, compiled templates), and on a busy
2-core machine one walk over them, plus the sockets of a few hundred consoles,
stalled the event loop for 200-700 ms: every console's event waited that
long (bench.fanout's p99). `gc.freeze()` moves what lives at start-up into
the permanent generation, which no collection walks again; reference
counting still frees those objects, only cycles among them are never
collected, which start-up objects do not form in numbers. Garbage is
collected first, so none of it is frozen.

The young generation's threshold goes from 700 allocations to 10,000: one
contact stored allocates thousands of objects (ORM states, rows, a request's
parsing), so at 700 a young collection ran every eight contacts or so, and
the older generations, which count young collections, often too: 3.8 % of
a process storing web-form posts and SMS was spent collecting (gc callbacks
summed, 4,000 contacts in-process), 0.9 % at 10,000.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
_settled = False


def settle_start_up_heap() -> int:
    """Collect, then freeze what is alive (once per process); how many objects are frozen."""
    global _settled  # once per process, whatever number of apps it starts
    if not _settled:
        _settled = True
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    return gc.get_freeze_count()
