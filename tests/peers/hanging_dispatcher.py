"""A dispatcher process whose sender hangs: the crash test kills it mid-delivery.

Run as `python -m tests.peers.hanging_dispatcher MARKER` with OMNIHUB_DATABASE_URL
set. When its sender is handed a message it writes the message's key to MARKER
and then waits forever, never delivering, until it is killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hub.context import Hub
from hub.delivery import Receipt
from hub.dispatcher import Dispatcher
from hub.settings import load_settings
from hub.values import Outbound


class HangingSender:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    async def send(self, outbound: Outbound) -> Receipt:
        self.marker.write_text(outbound.idempotency_key)
        await asyncio.Event().wait()
        raise AssertionError("unreachable: the test kills this process")


async def main(marker: Path) -> None:
    hub = Hub.create(load_settings())
    stop = asyncio.Event()
    await Dispatcher(hub, {"email": HangingSender(marker)}, poll_seconds=0.05).run(stop)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
