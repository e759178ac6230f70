"""Real `omnihub serve` processes on free loopback ports, for tests across processes.

`hub_processes(env, count)` starts them on one database (and Redis, as the
environment says) and yields a `HubProcess` per server, each with its base URL
and `kill()` (SIGKILL: no shutdown of any kind). Their output goes to a log
file per process, shown when one does not get ready.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.peers.dovecot import free_port

ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 60.0


@dataclass
class HubProcess:
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def hub_environment(**settings: str) -> dict[str, str]:
    """This environment without any OMNIHUB_ setting, then the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env.update({f"OMNIHUB_{name.upper()}": value for name, value in settings.items()})
    return env


def start_hub(env: dict[str, str], log: Path) -> HubProcess:
    port = free_port()
    command = [sys.executable, "-c", "from hub.cli import main; main()", "serve"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    return HubProcess(f"http://127.0.0.1:{port}", process, log)


def wait_until_ready(hub: HubProcess) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if hub.process.poll() is not None:
            raise RuntimeError(f"the hub exited at start:\n{hub.log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{hub.base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the hub did not get ready:\n{hub.log.read_text()}")


@contextlib.contextmanager
def hub_processes(env: dict[str, str], count: int, folder: Path) -> Iterator[list[HubProcess]]:
    hubs = [start_hub(env, folder / f"hub{number}.log") for number in range(count)]
    try:
        for hub in hubs:
            wait_until_ready(hub)
        yield hubs
    finally:
        for hub in hubs:
            hub.stop()
