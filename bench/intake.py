"""Intake under load: web-form and SMS webhooks at rising rates, 1 and 2 hub processes.

On a scratch PostgreSQL database (and, for two processes, the local Redis on
a stream of its own), starts `omnihub serve` processes on free loopback ports,
signs a supervisor in on the first and opens their console socket there
(`WS /agent/ws`). A load generator then offers, open loop, web-form posts
(JSON, each from its own client address through `X-Forwarded-For`, as behind
a reverse proxy) and Twilio SMS webhooks (signed) alternately, spread over
the processes, at each rate of `--rates` for `--seconds` each. For every step
it reports what was offered and achieved (2xx per second), and p50/p99 of the
request and, for the hub, of request to the event on the agent's socket
(matched to its request through the stored interaction after the run).

The baseline, same run and database server: a bare FastAPI endpoint on one
uvicorn process doing one INSERT per request through SQLAlchemy's async
engine (`bench.bare_insert`), under the same generator.

Sustained rate: the highest achieved rate of a step that answered at least
95 % of what it offered. Goals (issue 10): the hub's sustained rate at least
half the bare endpoint's, with p99 to the agent under 100 ms at that rate.
The generator runs in this process on the same machine as the servers, so
all share its cores: the figures compare, they are not a capacity.

    python -m bench.intake                               # rates 50 100 200 400 800, 10 s each
    python -m bench.intake --rates 25 50 --seconds 3     # CI-sized
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field

import httpx
from argon2 import PasswordHasher
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import hub.agents
from bench.harness import Summary, scratch_database, summarise
from hub.context import Hub
from hub.db import migrate
from hub.models import Interaction
from hub.settings import load_settings
from tests.peers.dovecot import free_port

GOAL_SHARE = 0.5
GOAL_P99_MS = 100.0
ANSWERED = 0.95
IN_FLIGHT = 512
SECRET = "bench-intake-secret-key-0123456789abcdef"  # noqa: S105 - a scratch hub's
TWILIO_TOKEN = "bench-intake-twilio-token"  # noqa: S105
PUBLIC_URL = "http://hub.bench.example"
EMAIL, PASSWORD = "supervisor@bench.example", "bench-intake-password"
START_SECONDS = 90.0


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.intake",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 100, 200, 400, 800])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--database-url", help="the PostgreSQL server (default: 127.0.0.1:5432, user postgres)"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


# --- processes ----------------------------------------------------------------


def hub_environment(database_url: str, redis_url: str | None, stream: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env.update(
        OMNIHUB_DATABASE_URL=database_url,
        OMNIHUB_SECRET_KEY=SECRET,
        OMNIHUB_PUBLIC_URL=PUBLIC_URL,
        OMNIHUB_TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        OMNIHUB_REDIS_STREAM=stream,
    )
    if redis_url:
        env["OMNIHUB_REDIS_URL"] = redis_url
    return env


@contextmanager
def started(commands: list[list[str]], env: dict[str, str]) -> Iterator[None]:
    processes = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for command in commands
    ]
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


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


# --- the load -------------------------------------------------------------------


@dataclass
class Step:
    rate: int
    offered: int = 0
    sent_at: dict[str, float] = field(default_factory=dict)  # marker -> send time
    answered: list[float] = field(default_factory=list)  # request seconds, 2xx only
    first_sent: float = 0.0
    last_answer: float = 0.0

    @property
    def achieved(self) -> float:
        span = self.last_answer - self.first_sent
        return len(self.answered) / span if span > 0 else 0.0

    @property
    def share_answered(self) -> float:
        return len(self.answered) / self.offered if self.offered else 0.0


def percentile(values: list[float], share: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


class Requests:
    """The two kinds of contact, alternately; each carries a unique marker."""

    def __init__(self, bases: list[str], bare: bool) -> None:
        self.bases = bases
        self.bare = bare
        self.validator = RequestValidator(TWILIO_TOKEN)
        self.number = 0

    def next(self) -> tuple[str, str, dict[str, object]]:
        """(marker, url, httpx arguments) of the next request."""
        self.number += 1
        n = self.number
        marker = f"bench-{uuid.uuid4().hex[:12]}"
        base = self.bases[n % len(self.bases)]
        if self.bare:
            return marker, f"{base}/insert", {"json": {"text": marker}}
        if n % 2:
            body = {
                "name": f"Kunde {n}",
                "email": f"kunde{n % 5000}@bench.example",
                "subject": "Frage",
                "message": f"Guten Tag, {marker}",
                "topic": "inquiry",
            }
            forwarded = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
            headers = {"X-Forwarded-For": forwarded}
            return marker, f"{base}/channels/webform", {"json": body, "headers": headers}
        form = {
            "MessageSid": f"SM{marker}",
            "AccountSid": "AC0000",
            "From": f"+49151{n % 5000:08d}",
            "To": "+4930123456",
            "Body": f"Hallo {marker}",
        }
        signature = self.validator.compute_signature(f"{PUBLIC_URL}/channels/sms/twilio", form)
        headers = {"X-Twilio-Signature": signature}
        return marker, f"{base}/channels/sms/twilio", {"data": form, "headers": headers}


async def offer(client: httpx.AsyncClient, requests: Requests, rate: int, seconds: float) -> Step:
    """Open loop: send at the rate whatever the answers; wait for the stragglers."""
    step = Step(rate)
    gate = asyncio.Semaphore(IN_FLIGHT)
    tasks: list[asyncio.Task[None]] = []

    async def one(marker: str, url: str, arguments: dict[str, object]) -> None:
        async with gate:
            sent = time.perf_counter()
            step.sent_at[marker] = sent
            try:
                answer = await client.post(url, timeout=30, **arguments)  # type: ignore[arg-type]
            except httpx.HTTPError:
                return
            if answer.is_success:
                now = time.perf_counter()
                step.answered.append(now - sent)
                step.last_answer = max(step.last_answer, now)

    count = int(rate * seconds)
    step.first_sent = start = time.perf_counter()
    for number in range(count):
        delay = start + number / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(*requests.next())))
        step.offered += 1
    await asyncio.gather(*tasks)
    return step


# --- the agent's socket -------------------------------------------------------


@asynccontextmanager
async def console(base: str) -> AsyncIterator[dict[int, float]]:
    """A supervisor's console socket on `base`; interaction id -> when its event arrived."""
    seen: dict[int, float] = {}
    async with httpx.AsyncClient(base_url=base) as client:
        answer = await client.post("/login", json={"email": EMAIL, "password": PASSWORD})
        answer.raise_for_status()
        cookie = f"omnihub_session={answer.cookies['omnihub_session']}"
    ws_base = base.replace("http://", "ws://")
    headers = {"Cookie": cookie, "Origin": base}
    async with connect(f"{ws_base}/agent/ws", additional_headers=headers) as ws:

        async def read() -> None:
            try:
                async for raw in ws:
                    message = json.loads(raw)
                    for frame in message if isinstance(message, list) else [message]:
                        if frame.get("type") == "message.received":
                            interaction = frame.get("data", {}).get("interaction_id")
                            if isinstance(interaction, int):
                                seen.setdefault(interaction, time.perf_counter())
            except ConnectionClosed:
                return

        reader = asyncio.create_task(read())
        try:
            yield seen
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def to_agent(hub_: Hub, step: Step, seen: dict[int, float]) -> list[float]:
    """Seconds from each request to its event on the agent's socket."""
    async with hub_.sessions() as session:
        rows = await session.execute(
            select(Interaction.id, Interaction.external_id, Interaction.text).where(
                Interaction.channel.in_(("sms", "webform"))
            )
        )
        stored = list(rows)
    times = []
    for interaction, external_id, text in stored:
        marker = (external_id or "")[2:] if (external_id or "").startswith("SM") else None
        if marker is None and text:
            marker = next((w for w in text.split() if w.startswith("bench-")), None)
        if marker in step.sent_at and interaction in seen:
            times.append(seen[interaction] - step.sent_at[marker])
    return times


# --- the runs -------------------------------------------------------------------


@dataclass
class Outcome:
    label: str
    steps: list[Step]
    to_agent: list[list[float]]

    def sustained(self) -> tuple[float, int | None]:
        """The highest achieved rate answered well enough, and its step's index."""
        good = [(s.achieved, i) for i, s in enumerate(self.steps) if s.share_answered >= ANSWERED]
        return max(good) if good else (0.0, None)


async def prepare(url: str) -> None:
    await migrate(url)
    hub.agents.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    hub_ = Hub.create(load_settings(_env_file=None, database_url=url))
    try:
        async with hub_.work() as work:
            await hub.agents.create_agent(work.session, EMAIL, "Bench", "supervisor", PASSWORD)
    finally:
        await hub_.close()


async def run_hub(arguments: argparse.Namespace, processes: int) -> Outcome:
    server = arguments.database_url
    async with scratch_database(server, True) as url:
        await prepare(url)
        stream = f"omnihub:bench:{uuid.uuid4().hex[:8]}"
        env = hub_environment(url, arguments.redis_url if processes > 1 else None, stream)
        ports = [free_port() for _ in range(processes)]
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        with started([serve_command(port) for port in ports], env):
            await wait_until_ready(bases)
            checker = Hub.create(load_settings(_env_file=None, database_url=url))
            try:
                steps, delays = [], []
                async with console(bases[0]) as seen, httpx.AsyncClient() as client:
                    requests = Requests(bases, bare=False)
                    for rate in arguments.rates:
                        step = await offer(client, requests, rate, arguments.seconds)
                        await asyncio.sleep(1.0)  # the last events on their way
                        steps.append(step)
                        delays.append(await to_agent(checker, step, seen))
                        print_step(f"hub x{processes}", step, delays[-1])
            finally:
                await checker.close()
    return Outcome(f"hub, {processes} process{'es' if processes > 1 else ''}", steps, delays)


async def run_bare(arguments: argparse.Namespace) -> Outcome:
    async with scratch_database(arguments.database_url, True) as url:
        port = free_port()
        env = {**os.environ, "BENCH_DATABASE_URL": url}
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_insert:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        base = f"http://127.0.0.1:{port}"
        with started([command], env):
            await wait_until_ready([base])
            steps = []
            async with httpx.AsyncClient() as client:
                requests = Requests([base], bare=True)
                for rate in arguments.rates:
                    steps.append(await offer(client, requests, rate, arguments.seconds))
                    print_step("bare INSERT", steps[-1], [])
    return Outcome("bare FastAPI INSERT", steps, [[] for _ in steps])


def print_step(label: str, step: Step, delays: list[float]) -> None:
    line = (
        f"  {label:<12} offered {step.rate:>5}/s  achieved {step.achieved:>7.1f}/s  "
        f"answered {step.share_answered:>6.1%}  request p50 "
        f"{percentile(step.answered, 0.5) * 1e3:>7.1f} ms  p99 "
        f"{percentile(step.answered, 0.99) * 1e3:>7.1f} ms"
    )
    if delays:
        line += f"  to agent p99 {percentile(delays, 0.99) * 1e3:>7.1f} ms ({len(delays)})"
    print(line, flush=True)


def report(hubs: list[Outcome], bare: Outcome) -> None:
    base_rate, _ = bare.sustained()
    for outcome in hubs:
        rate, index = outcome.sustained()
        p99 = percentile(outcome.to_agent[index], 0.99) * 1e3 if index is not None else float("nan")
        share = rate / base_rate if base_rate else 0.0
        summarise(
            Summary(
                f"intake: web form + SMS webhooks, {outcome.label}",
                f"{rate:,.0f}/s sustained, to agent p99 {p99:,.0f} ms",
                f"bare INSERT endpoint {base_rate:,.0f}/s",
                share,
                f"≥ {GOAL_SHARE:.0%} of bare, p99 to agent < {GOAL_P99_MS:g} ms",
                share >= GOAL_SHARE and p99 < GOAL_P99_MS,
            )
        )


async def run(arguments: argparse.Namespace) -> None:
    print(
        f"bench.intake: rates {arguments.rates} per second, {arguments.seconds:g} s each, "
        f"{os.cpu_count()} cores shared by generator and servers"
    )
    hubs = [await run_hub(arguments, processes) for processes in arguments.processes]
    bare = await run_bare(arguments)
    report(hubs, bare)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_arguments(argv)))


if __name__ == "__main__":
    main()
