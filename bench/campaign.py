"""A 100,000-recipient campaign to aiosmtpd on loopback, beside a bare aiosmtplib loop.

Fills 100,000 customers (`--recipients`), a tenth of them excluded for mixed
reasons (`bench.mixed_recipients`), and starts one aiosmtpd sink in a process
of its own (so that the server does not share the sender's interpreter). In
the same run, against that sink:

- the baseline: a bare aiosmtplib loop over one connection that builds an
  `EmailMessage` per allowed recipient (subject and text with the name, an
  HTML part) and sends it, nothing else: no database, no gate, no record;
- the hub: the campaign previewed, submitted, approved by a second agent and
  started, then `CampaignSender` to the end: the segment paged into the
  outbox with the gate's decisions, rendered from templates compiled once,
  the gate asked again per claimed batch, every message handed over (the
  exactly-once commit point) and sent over `--connections` reused SMTP
  connections, outcomes recorded in group commits.

It prints messages per second of each and their ratio (goal: the hub at
least the bare loop's rate), and the peak memory each added over the process
before it (RSS sampled every 50 ms), with the hub's RSS at 10 % and at 100 %
of its messages, which must be flat in the number of recipients. A CHECK line
proves the sink received exactly one message per allowed recipient from the
hub and none for an excluded one (exit 1 if not).

Run from the repository root::

    python -m bench.campaign                      # SQLite in a temporary file
    python -m bench.campaign --postgres           # a scratch database on 127.0.0.1:5432
    python -m bench.campaign --recipients 20000   # a quicker run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib

from bench.harness import Summary, add_database_arguments, scratch_database, summarise
from bench.history import server_version
from bench.mixed_recipients import Planted, fill
from channels.email.bulk import BulkSmtpSender
from hub.agents import create_agent
from hub.campaigns.approval import (
    check_fields,
    compute_preview,
    do_approve,
    do_create_campaign,
    do_start_sending,
    do_submit,
)
from hub.campaigns.progress import campaign_progress
from hub.campaigns.sending import CampaignSender
from hub.context import Hub
from hub.db import migrate
from hub.models import Campaign
from hub.settings import load_settings

HOST = "127.0.0.1"
SECRET = "bench-secret-key-that-is-long-enough-0123456789"  # noqa: S105 - a scratch hub
HUB_FROM = "news@hub.bench.example"
BARE_FROM = "news@bare.bench.example"
SUBJECT = "Neuigkeiten für {name}"
TEXT = "Hallo {name},\n\nunsere Neuigkeiten im Frühling.\n\nIhr Team\n"
HTML = "<p>Hallo {name},</p><p>unsere Neuigkeiten im Frühling.</p><p>Ihr Team</p>"
TEMPLATE = {
    "variants": {
        "de": {
            "subject": "Neuigkeiten für {{ customer.name }}",
            "text": "Hallo {{ customer.name }},\n\nunsere Neuigkeiten im Frühling.\n\nIhr Team\n"
            "Abmelden: {{ unsubscribe_url }}\n",
            "html": "<p>Hallo {{ customer.name }},</p><p>unsere Neuigkeiten im Frühling.</p>"
            "<p>Ihr Team</p>",
        }
    }
}
SAMPLE_SECONDS = 0.05


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.campaign", description=__doc__)
    add_database_arguments(parser)
    parser.add_argument("--recipients", type=int, default=100_000, help="customers to fill")
    parser.add_argument("--connections", type=int, default=4, help="the hub's SMTP connections")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)  # run as the sink process
    return parser.parse_args(argv)


# The sink: aiosmtpd in a process of its own, counting (MAIL FROM, RCPT TO).


class CountingHandler:
    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mine = self.counts.setdefault(envelope.mail_from, {})
        for rcpt in envelope.rcpt_tos:
            mine[rcpt] = mine.get(rcpt, 0) + 1
        return "250 2.0.0 OK"


def run_sink(port: int) -> None:
    """Serve until stdin closes; every line read answers the counts as one JSON line."""
    from aiosmtpd.controller import Controller

    handler = CountingHandler()
    controller = Controller(handler, hostname=HOST, port=port)
    controller.start()
    print("ready", flush=True)
    for _line in sys.stdin:
        print(json.dumps(handler.counts), flush=True)
    controller.stop()


class Sink:
    def __init__(self) -> None:
        from tests.peers.smtp import find_free_port

        self.port = find_free_port()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.campaign", "--sink", str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.process.stdout is not None and self.process.stdout.readline() == "ready\n"

    def counts(self, mail_from: str) -> dict[str, int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("report\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline()).get(mail_from, {})

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


# Memory: the process's resident set, sampled while a case runs.


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Memory:
    before: int
    peak: int = 0

    @property
    def added_mib(self) -> float:
        return (self.peak - self.before) / 2**20


async def measured(run: Callable[[], Awaitable[Any]]) -> tuple[float, Memory, Any]:
    """Seconds the run took, the peak RSS while it ran, and what it returned."""
    memory = Memory(rss_bytes())
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            memory.peak = max(memory.peak, rss_bytes())
            await asyncio.sleep(SAMPLE_SECONDS)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    try:
        result = await run()
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        await sampler
    memory.peak = max(memory.peak, rss_bytes())
    return elapsed, memory, result


# The baseline.


async def bare_loop(port: int, recipients: list[tuple[str, str]]) -> None:
    smtp = aiosmtplib.SMTP(hostname=HOST, port=port)
    await smtp.connect()
    try:
        for address, name in recipients:
            message = EmailMessage()
            message["From"] = BARE_FROM
            message["To"] = address
            message["Subject"] = SUBJECT.format(name=name)
            message.set_content(TEXT.format(name=name))
            message.add_alternative(HTML.format(name=name), subtype="html")
            await smtp.send_message(message)
    finally:
        await smtp.quit()


# The hub.


async def approved_campaign(hub: Hub) -> tuple[int, dict[str, Any], float]:
    """A campaign to every customer, previewed, approved by a second agent and started."""
    started = time.perf_counter()
    async with hub.work() as work:
        author = await create_agent(work.session, "author@bench.example", "A", "agent", "x" * 12)
        approver = await create_agent(
            work.session, "approver@bench.example", "B", "supervisor", "x" * 12
        )
        fields = check_fields("Spring news", "email", {}, TEMPLATE, None)
        campaign = await do_create_campaign(work, author, fields)
        preview = await compute_preview(hub, work, campaign, samples=1)
        await do_submit(work, author, campaign)
        await do_approve(hub, work, approver, campaign)
    async with hub.work() as work:
        fresh = await work.session.get(Campaign, campaign.id)
        voided = await do_start_sending(hub, work, author.id, fresh)
        assert voided is None, voided
    return campaign.id, preview["figures"], time.perf_counter() - started


async def hub_campaign(
    hub: Hub, campaign_id: int, port: int, connections: int, expected: int
) -> dict[str, int]:
    """Send it; returns the RSS at 10 % and at the end of the messages."""
    senders = [
        BulkSmtpSender(HOST, port, mail_from=HUB_FROM, secret_key=SECRET, tls="plain")
        for _ in range(connections)
    ]
    marks: dict[str, int] = {}

    async def watch() -> None:
        while "10%" not in marks:
            async with hub.sessions() as session:
                progress = await campaign_progress(session, campaign_id)
            if progress["sent"] >= expected // 10:
                marks["10%"] = rss_bytes()
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    try:
        await CampaignSender(hub, senders).run(campaign_id)
    finally:
        watcher.cancel()
        for sender in senders:
            await sender.close()
    marks["100%"] = rss_bytes()
    return marks


def check(
    sink: Sink, planted: Planted, figures: dict[str, Any]
) -> tuple[bool, list[tuple[str, str]]]:
    """Whether the hub reached exactly the allowed recipients once; and those recipients."""
    excluded = set(planted.expected("marketing"))
    allowed = [r.address for r in planted.recipients if r.customer_id not in excluded]
    received = sink.counts(HUB_FROM)
    excluded_addresses = {r.address for r in planted.recipients if r.customer_id in excluded}
    twice = sum(1 for count in received.values() if count > 1)
    wrong = len(set(received) & excluded_addresses)
    ok = set(received) == set(allowed) and not twice and not wrong
    print(
        f"CHECK {'OK' if ok else 'FAIL'}: the sink received {sum(received.values()):,} messages "
        f"from the hub for {len(received):,} addresses; allowed {len(allowed):,}; "
        f"twice {twice}; excluded reached {wrong}; the preview excluded "
        f"{figures['excluded']:,} ({figures['excluded_by_reason']})"
    )
    names = {r.address: f"Customer {r.customer_id}" for r in planted.recipients}
    return ok, [(address, names[address]) for address in allowed]


async def run(arguments: argparse.Namespace) -> bool:
    sink = Sink()
    try:
        async with scratch_database(arguments.database_url, arguments.postgres) as url:
            await migrate(url)
            settings = load_settings(
                _env_file=None, database_url=url, secret_key=SECRET, public_url="http://hub.bench"
            )
            hub = Hub.create(settings)
            try:
                return await compare(hub, sink, arguments)
            finally:
                await hub.close()
    finally:
        sink.stop()


async def compare(hub: Hub, sink: Sink, arguments: argparse.Namespace) -> bool:
    print(
        f"bench.campaign on {await server_version(hub)}: {arguments.recipients:,} customers, "
        f"10% excluded for mixed reasons; hub over {arguments.connections} SMTP connections, "
        "the bare loop over one; aiosmtpd sink in its own process"
    )
    started = time.perf_counter()
    planted = await fill(hub.engine, arguments.recipients, arguments.seed)
    print(f"filled in {time.perf_counter() - started:.1f} s")
    campaign_id, figures, approval_seconds = await approved_campaign(hub)
    print(
        f"preview, submit, approve and start (two full gate passes over the segment): "
        f"{approval_seconds:.1f} s"
    )
    expected = figures["recipients"]
    hub_seconds, hub_memory, marks = await measured(
        lambda: hub_campaign(hub, campaign_id, sink.port, arguments.connections, expected)
    )
    ok, allowed = check(sink, planted, figures)
    bare_seconds, bare_memory, _ = await measured(lambda: bare_loop(sink.port, allowed))
    bare_count = sum(sink.counts(BARE_FROM).values())
    report(expected, hub_seconds, hub_memory, bare_count, bare_seconds, bare_memory)
    at_tenth, at_end = marks.get("10%"), marks["100%"]
    if at_tenth is not None:
        growth = (at_end - at_tenth) / 2**20
        print(
            f"hub RSS at 10% of its messages {at_tenth / 2**20:.1f} MiB, at 100% "
            f"{at_end / 2**20:.1f} MiB ({growth:+.1f} MiB for the other 90%)"
        )
    return ok


def report(
    hub_count: int,
    hub_seconds: float,
    hub_memory: Memory,
    bare_count: int,
    bare_seconds: float,
    bare_memory: Memory,
) -> None:
    hub_rate, bare_rate = hub_count / hub_seconds, bare_count / bare_seconds
    print(f"{'case':<42}  {'messages':>9}  {'seconds':>8}  {'msg/s':>8}  {'peak +MiB':>9}")
    print(
        f"{'bare aiosmtplib loop, 1 connection':<42}  {bare_count:>9,}  {bare_seconds:>8.1f}  "
        f"{bare_rate:>8.0f}  {bare_memory.added_mib:>9.1f}"
    )
    print(
        f"{'hub campaign (segment → outbox → sink)':<42}  {hub_count:>9,}  {hub_seconds:>8.1f}  "
        f"{hub_rate:>8.0f}  {hub_memory.added_mib:>9.1f}"
    )
    summarise(
        Summary(
            scenario=f"campaign to {hub_count:,} of a segment, 10% excluded, to aiosmtpd",
            figure=f"{hub_rate:.0f} msg/s (+{hub_memory.added_mib:.0f} MiB peak)",
            baseline=f"bare aiosmtplib loop {bare_rate:.0f} msg/s",
            ratio=hub_rate / bare_rate,
            goal="at least the bare loop's rate",
            passed=hub_rate >= bare_rate,
        )
    )


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    if arguments.sink is not None:
        run_sink(arguments.sink)
        return
    if not asyncio.run(run(arguments)):
        raise SystemExit("the sink did not receive exactly the allowed recipients once")


if __name__ == "__main__":
    main()
