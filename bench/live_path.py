"""The live path under a campaign: intake's p99 to the agent while 100,000 messages go out.

On a scratch PostgreSQL database with `--recipients` customers (a tenth of
them excluded for mixed reasons, `bench.mixed_recipients`), one
`omnihub serve` process sending e-mail to an aiosmtpd sink in a process of
its own (`bench.campaign.Sink`). A supervisor's console socket is open. The
load generator of `bench.intake` offers web-form posts and SMS webhooks at
`--rate` for `--seconds`, twice:

- alone (the baseline, same run and process);
- while a campaign to every customer sends: created, previewed and submitted
  by one agent and approved by a supervisor through the API, then started;
  the load starts once its first messages reached the sink.

It reports, for both, request p99 and p99 from request to the event on the
agent's socket, and how many campaign messages the sink took meanwhile.
Goal (issue 10): the live path's p99 at most 1.5x worse while the campaign
sends (live traffic must not starve).

    python -m bench.live_path                                   # 100,000 recipients
    python -m bench.live_path --recipients 5000 --seconds 5     # CI-sized
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
from argon2 import PasswordHasher

import hub.agents
from bench.campaign import Sink
from bench.harness import Summary, scratch_database, summarise
from bench.intake import offer, percentile
from bench.intake_console import EMAIL, PASSWORD, console, to_agent
from bench.mixed_recipients import fill
from bench.servers import hub_environment, serve_command, started, wait_until_ready
from hub.context import Hub
from hub.db import migrate
from hub.settings import load_settings
from tests.peers.dovecot import free_port

GOAL = 1.5
AUTHOR, AUTHOR_PASSWORD = "author@bench.example", "bench-author-password"
MAIL_FROM = "news@bench.example"
TEMPLATE = {
    "fallback": "en",
    "variants": {
        "en": {
            "subject": "News for {{ customer.name }}",
            "text": "Hello {{ customer.name }},\nour news.\nUnsubscribe: {{ unsubscribe_url }}",
            "html": "<p>Hello {{ customer.name }}</p>",
        }
    },
}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.live_path",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=20, help="contacts offered per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    parser.add_argument(
        "--database-url", help="the PostgreSQL server (default: 127.0.0.1:5432, user postgres)"
    )
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


async def prepare(url: str, recipients: int, seed: int) -> tuple[str, str]:
    """The schema, the customers, and API tokens of the author and the approver."""
    await migrate(url)
    hub.agents.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    hub_ = Hub.create(load_settings(_env_file=None, database_url=url))
    try:
        await fill(hub_.engine, recipients, seed)
        async with hub_.work() as work:
            approver = await hub.agents.create_agent(
                work.session, EMAIL, "Bench", "supervisor", PASSWORD
            )
            author = await hub.agents.create_agent(
                work.session, AUTHOR, "Author", "agent", AUTHOR_PASSWORD
            )
            tokens = (
                await hub.agents.create_token(work.session, author),
                await hub.agents.create_token(work.session, approver),
            )
    finally:
        await hub_.close()
    return tokens


async def start_campaign(base: str, author: str, approver: str) -> int:
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        as_author = {"Authorization": f"Bearer {author}"}
        as_approver = {"Authorization": f"Bearer {approver}"}
        body = {"name": "Bench news", "channel": "email", "segment": {}, "template": TEMPLATE}
        created = await client.post("/api/campaigns", json=body, headers=as_author)
        created.raise_for_status()
        path = f"/api/campaigns/{created.json()['id']}"
        for step, headers in (("preview", as_author), ("submit", as_author)):
            (await client.post(f"{path}/{step}", headers=headers)).raise_for_status()
        (await client.post(f"{path}/approve", headers=as_approver)).raise_for_status()
        (await client.post(f"{path}/send", headers=as_approver)).raise_for_status()
        return int(created.json()["id"])


async def until_flowing(sink: Sink, seconds: float = 300) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        count = sum((await asyncio.to_thread(sink.counts, MAIL_FROM)).values())
        if count:
            return count
        await asyncio.sleep(0.2)
    raise SystemExit("the campaign sent nothing within the wait")


async def measure(
    base: str, checker: Hub, arguments: argparse.Namespace, label: str
) -> dict[str, Any]:
    async with console(base) as watched:
        step = await offer([base], "hub", arguments.rate, arguments.seconds, first=0)
        await asyncio.sleep(1.0)
        delays = await to_agent(checker, step, watched.seen)
    figures = {
        "answered": step.share_answered,
        "request_p99": percentile(step.latencies, 0.99) * 1e3,
        "agent_p99": percentile(delays, 0.99) * 1e3,
        "events": len(delays),
    }
    print(
        f"  {label:<22} answered {figures['answered']:.1%}  request p99 "
        f"{figures['request_p99']:,.0f} ms  to agent p99 {figures['agent_p99']:,.0f} ms "
        f"({figures['events']} events)",
        flush=True,
    )
    return figures


async def run(arguments: argparse.Namespace) -> None:
    print(
        f"bench.live_path: {arguments.recipients:,} recipients, {arguments.rate} contacts/s "
        f"for {arguments.seconds:g} s, alone and under the campaign"
    )
    sink = Sink()
    try:
        async with scratch_database(arguments.database_url, True) as url:
            author, approver = await prepare(url, arguments.recipients, arguments.seed)
            env = hub_environment(url, None, "omnihub:bench:live", sink, MAIL_FROM)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            with started([serve_command(port)], env):
                await wait_until_ready([base])
                checker = Hub.create(load_settings(_env_file=None, database_url=url))
                try:
                    alone = await measure(base, checker, arguments, "alone")
                    await start_campaign(base, author, approver)
                    before = await until_flowing(sink)
                    loaded = await measure(base, checker, arguments, "while the campaign sends")
                    during = sum(sink.counts(MAIL_FROM).values()) - before
                    print(f"  campaign messages the sink took during the second run: {during:,}")
                finally:
                    await checker.close()
    finally:
        sink.stop()
    ratio = loaded["agent_p99"] / alone["agent_p99"]
    summarise(
        Summary(
            f"live path under a {arguments.recipients:,}-recipient campaign "
            f"({arguments.rate} contacts/s)",
            f"to agent p99 {loaded['agent_p99']:,.0f} ms ({during:,} campaign messages meanwhile)",
            f"the same alone {alone['agent_p99']:,.0f} ms",
            ratio,
            f"at most {GOAL:g}x",
            ratio <= GOAL and loaded["answered"] >= 0.95,
        )
    )


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_arguments(argv)))


if __name__ == "__main__":
    main()
