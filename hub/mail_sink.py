"""The demo's embedded SMTP sink: accepts every message on loopback and keeps it as a file.

`omnihub demo` points the hub's SMTP sender here, so a newcomer can send
replies and confirmations and read them in `<folder>/*.eml`, with no mail
server and nothing leaving the machine.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


class _KeepAsFile:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.count += 1
        target = self.folder / f"{self.count:05d}.eml"
        target.write_bytes(envelope.original_content or envelope.content)
        return "250 OK kept"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start_sink(folder: Path) -> Controller:
    """Start the sink in a thread of its own; `.port` says where, `.stop()` ends it."""
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(_KeepAsFile(folder), hostname=HOST, port=free_port())
    controller.start()
    return controller
