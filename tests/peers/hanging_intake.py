"""An IMAP intake process that hangs while taking its Nth message: the crash test kills it.

Run as `python -m tests.peers.hanging_intake HOST PORT USER PASSWORD N MARKER` with
OMNIHUB_DATABASE_URL set. It takes messages normally until the Nth, writes
MARKER when it has fetched and stored that one's raw bytes, and then waits
forever before the hub commits it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from channels.email.imap_intake import ImapConfig, ImapIntake
from channels.email.inbound import IntakeOutcome, take_message
from hub.context import Hub
from hub.models import RawMessage
from hub.settings import load_settings


async def main(host: str, port: int, user: str, password: str, hang_at: int, marker: Path) -> None:
    hub = Hub.create(load_settings())
    taken = 0

    async def take(hub_: Hub, raw: RawMessage, limit: int) -> IntakeOutcome:
        nonlocal taken
        taken += 1
        if taken == hang_at:
            marker.write_text(str(raw.uid))  # noqa: ASYNC240 - a one-off test signal
            await asyncio.Event().wait()
        return await take_message(hub_, raw, limit)

    config = ImapConfig(
        host=host, port=port, user=user, password=password, tls=False, poll_seconds=0.2
    )
    await ImapIntake(hub, config, take=take).run(asyncio.Event())


if __name__ == "__main__":
    host, port, user, password, hang_at, marker = sys.argv[1:7]
    asyncio.run(main(host, int(port), user, password, int(hang_at), Path(marker)))
