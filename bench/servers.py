"""The servers a load benchmark runs (hub processes, `omnihub serve`, or the bare
endpoint): started and stopped around a block, their readiness, and the CPU
time they and the whole machine use meanwhile (from `/proc`).

Shared by `bench.intake` and `bench.live_path`; the servers' e-mail goes to a
`bench.campaign.Sink` in a process of its own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.campaign import Sink

SECRET = "bench-intake-secret-key-0123456789abcdef"  # noqa: S105 - a scratch hub's
TWILIO_TOKEN = "bench-intake-twilio-token"  # noqa: S105
PUBLIC_URL = "http://hub.bench.example"
MAIL_FROM = "service@bench.example"
START_SECONDS = 90.0


def hub_environment(
    database_url: str, redis_url: str | None, stream: str, sink: Sink, mail_from: str = MAIL_FROM
) -> dict[str, str]:
    """The servers' settings; their e-mail (the web form's confirmations) goes to `sink`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env.update(
        OMNIHUB_DATABASE_URL=database_url,
        OMNIHUB_SECRET_KEY=SECRET,
        OMNIHUB_PUBLIC_URL=PUBLIC_URL,
        OMNIHUB_TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        OMNIHUB_REDIS_STREAM=stream,
        OMNIHUB_SMTP_HOST="127.0.0.1",
        OMNIHUB_SMTP_PORT=str(sink.port),
        OMNIHUB_SMTP_TLS="false",
        OMNIHUB_MAIL_FROM=mail_from,
    )
    if redis_url:
        env["OMNIHUB_REDIS_URL"] = redis_url
    return env


@contextmanager
def started(commands: list[list[str]], env: dict[str, str]) -> Iterator[list[int]]:
    """The servers running, for the length of the block; yields their process ids."""
    processes = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for command in commands
    ]
    try:
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def cpu_seconds(pids: list[int]) -> float | None:
    """CPU time (user + system) the processes have used so far; None where /proc is not."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


def cpu_used(pids: list[int], before: float | None) -> float | None:
    now = cpu_seconds(pids)
    return now - before if now is not None and before is not None else None


@dataclass(frozen=True, slots=True)
class MachineTimes:
    """The machine's CPU time so far, all cores, in ticks (`/proc/stat`)."""

    busy: int  # neither idle nor waiting for I/O (steal not counted)
    stolen: int  # given by the hypervisor to other machines
    total: int


def machine_times() -> MachineTimes | None:
    """None where /proc is not."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in first[1:9])
    busy = user + nice + system + irq + softirq
    return MachineTimes(busy, steal, busy + idle + iowait + steal)


def machine_shares(before: MachineTimes | None) -> tuple[float | None, float | None]:
    """(busy, stolen): the shares of the machine's CPU time since `before`."""
    now = machine_times()
    if now is None or before is None or now.total == before.total:
        return None, None
    span = now.total - before.total
    return (now.busy - before.busy) / span, (now.stolen - before.stolen) / span


async def wait_until_ready(bases: list[str]) -> None:
    deadline = time.monotonic() + START_SECONDS
    async with httpx.AsyncClient() as client:
        for base in bases:
            while True:
                answer = None
                with suppress(httpx.HTTPError):
                    answer = await client.get(f"{base}/readyz", timeout=2)
                if answer is not None and answer.status_code == 200:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"{base} did not get ready within {START_SECONDS:g} s")
                await asyncio.sleep(0.2)


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-c", "from hub.cli import main; main()", "serve", "--port", str(port)]
