"""Waiting until an asyncio transport has handed what it buffered to the kernel.

The commit points of sending (`channels.email.sending`, `hub.campaigns.handover`)
must know that a write has left before the next one goes. Transports have no
event for it (a stream's `drain` waits only down to the high-water mark), so
this polls the write buffer.
"""

from __future__ import annotations

import asyncio

POLL_SECONDS = 0.001


async def drained(transport: asyncio.WriteTransport, seconds: float) -> bool:
    """Whether the transport's write buffer emptied within `seconds`; False at
    once when the transport is closing with data left in it."""
    waited = 0.0
    while transport.get_write_buffer_size():
        if transport.is_closing() or waited > seconds:
            return False
        await asyncio.sleep(POLL_SECONDS)
        waited += POLL_SECONDS
    return True
