"""bench.intake's load generator: one step of open-loop requests, in a process of its own.

`python -m bench.intake_load` reads one step's plan as JSON on stdin (the
bases, the kind of traffic, the rate, the seconds, the first request number)
and writes its outcome as JSON on stdout: per request its marker, when it was
due and when its answer came (`time.perf_counter()`, which on Linux is
CLOCK_MONOTONIC, the same clock in every process of the machine, so the
caller can match an answer to the event its console saw), and its status.

Why a process of its own: in the servers' or the console's process the
generator's own work (building, signing and parsing requests) would be taken
for theirs, and its event loop would cap the rate it can offer. It builds
every request before the clock starts and speaks HTTP/1.1 over keep-alive
connections itself (a few lines of asyncio streams: no client library's
per-request overhead), at most `IN_FLIGHT` at a time per step.

Open loop: request n is due at start + n / rate whatever the answers; a
request that waits for a free connection is timed from when it was due, so a
server that falls behind shows as growing latency (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

IN_FLIGHT = 256
TIMEOUT_SECONDS = 30.0
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True, slots=True)
class Plan:
    bases: list[str]
    kind: str  # "hub" (web form and SMS alternately) or "bare" (the INSERT endpoint)
    rate: float
    seconds: float
    first: int  # the first request's number (customers and addresses follow from it)
    public_url: str
    twilio_token: str


@dataclass(frozen=True, slots=True)
class Prepared:
    marker: str
    base: str
    raw: bytes


def build(plan: Plan) -> list[Prepared]:
    """Every request of the step, ready to write."""
    validator = RequestValidator(plan.twilio_token)
    count = int(plan.rate * plan.seconds)
    return [_one(plan, validator, plan.first + index) for index in range(count)]


def _one(plan: Plan, validator: RequestValidator, n: int) -> Prepared:
    marker = f"bench-{uuid.uuid4().hex[:12]}"
    # Every process gets both kinds in turn: n's parity picks the kind, so not the process.
    base = plan.bases[n // 2 % len(plan.bases)]
    host = urlsplit(base).netloc
    if plan.kind == "bare":
        body = json.dumps({"text": marker}).encode()
        return Prepared(marker, base, _request(host, "/insert", "application/json", body, {}))
    if n % 2:
        fields = {
            "name": f"Kunde {n}",
            "email": f"kunde{n % 5000}@bench.example",
            "subject": "Frage",
            "message": f"Guten Tag, {marker}",
            "topic": "inquiry",
        }
        # Each client its own address, as behind a reverse proxy: the form's rate limit is per IP.
        forwarded = {"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}
        body = json.dumps(fields).encode()
        raw = _request(host, "/channels/webform", "application/json", body, forwarded)
        return Prepared(marker, base, raw)
    form = {
        "MessageSid": f"SM{marker}",
        "AccountSid": "AC0000",
        "From": f"+49151{n % 5000:08d}",
        "To": "+4930123456",
        "Body": f"Hallo {marker}",
    }
    path = "/channels/sms/twilio"
    signature = validator.compute_signature(f"{plan.public_url}{path}", form)
    body = urlencode(form).encode()
    form_type = "application/x-www-form-urlencoded"
    raw = _request(host, path, form_type, body, {"X-Twilio-Signature": signature})
    return Prepared(marker, base, raw)


def _request(host: str, path: str, content_type: str, body: bytes, extra: dict[str, str]) -> bytes:
    headers = {
        "Host": host,
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        **extra,
    }
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body


class Connections:
    """Keep-alive connections per base; one request at a time on each."""

    def __init__(self) -> None:
        self.idle: dict[str, list[Connection]] = {}

    async def take(self, base: str, fresh: bool = False) -> tuple[bool, Connection]:
        """(whether it was used before, the connection)."""
        idle = self.idle.setdefault(base, [])
        if idle and not fresh:
            return True, idle.pop()
        address = urlsplit(base)
        return False, await asyncio.open_connection(address.hostname, address.port)

    def give_back(self, base: str, connection: Connection) -> None:
        self.idle.setdefault(base, []).append(connection)

    def close(self) -> None:
        for connections in self.idle.values():
            for _, writer in connections:
                writer.close()


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    """Write one request, read its answer; the status code."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def send(connections: Connections, request: Prepared) -> int:
    """The request on an idle connection, or a new one; once more on a new one when the
    server had closed the idle one (uvicorn closes a keep-alive connection after 5 s)."""
    reused, connection = await connections.take(request.base)
    try:
        status = await exchange(*connection, request.raw)
    except (OSError, asyncio.IncompleteReadError):
        connection[1].close()
        if not reused:
            raise
        _, connection = await connections.take(request.base, fresh=True)
        status = await exchange(*connection, request.raw)
    connections.give_back(request.base, connection)
    return status


async def offer(plan: Plan) -> dict[str, object]:
    prepared = build(plan)
    connections = Connections()
    gate = asyncio.Semaphore(IN_FLIGHT)
    results: list[tuple[str, float, float, int]] = []

    async def one(request: Prepared, due: float) -> None:
        async with gate:
            try:
                async with asyncio.timeout(TIMEOUT_SECONDS):
                    status = await send(connections, request)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                status = 0
            results.append((request.marker, due, time.perf_counter(), status))

    tasks = []
    start = time.perf_counter() + 0.05
    for number, request in enumerate(prepared):
        due = start + number / plan.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    connections.close()
    return {"start": start, "offered": len(prepared), "results": results}


def main() -> None:
    plan = Plan(**json.loads(sys.stdin.read()))
    outcome = asyncio.run(offer(plan))
    json.dump(outcome, sys.stdout)


if __name__ == "__main__":
    main()
