"""An agent's console socket, as the console's page opens it, for tests that follow events."""

from __future__ import annotations

import asyncio
import json

import httpx
from websockets.asyncio.client import ClientConnection, connect

PASSWORD = "correct horse battery"  # tests.conftest's make_agent gives every agent this


async def console_socket(base: str, email: str) -> ClientConnection:
    """A signed-in agent's console socket on the hub at `base`."""
    async with httpx.AsyncClient(base_url=base) as client:
        answer = await client.post("/login", json={"email": email, "password": PASSWORD})
        answer.raise_for_status()
        cookie = f"omnihub_session={answer.cookies['omnihub_session']}"
    headers = {"Cookie": cookie, "Origin": base}
    return await connect(base.replace("http://", "ws://") + "/agent/ws", additional_headers=headers)


async def next_of_type(ws: ClientConnection, kind: str, seconds: float = 15.0) -> dict:
    async with asyncio.timeout(seconds):
        while True:
            message = json.loads(await ws.recv())
            for frame in message if isinstance(message, list) else [message]:
                if frame.get("type") == kind:
                    return frame
