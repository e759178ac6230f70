"""Routing decisions for a busy hub against the bare queries each decision needs.

Fills 200 agents (`--agents`) in four teams, speaking English or German, a
fifth of them key-account agents with deputies, and 2,000 customers of tiers
A, B and C (a twentieth with an open complaint). Then 10,000 conversations
(`--arrivals`) arrive one by one, on every channel, while agents close
conversations, change presence and pull what waits, and for each arrival
times, interleaved in a random order,

- the baseline: the bare SELECTs a decision reads, fetched as plain rows (the
  key account's deputy, the present agents with their profiles, their load on
  the channel, the conversation's routing state), in a transaction of its own;
- the decision: `routing.router.route_conversation` on the shipped rules,
  including the routing lock, the decision itself and the flush of what it
  writes (the routing state, the agent's last assignment).

It prints p50/p99 of both and their ratio, how the decisions came out by
rule and outcome, and a CHECK line: no agent above capacity on any channel,
and every conversation either assigned or waiting. PASS means the decision's
p50 is within `TARGET` (5x) of the baseline's; the issue sets no figure.

Run from the repository root::

    python -m bench.routing                      # SQLite in a temporary file
    python -m bench.routing --postgres           # a scratch database on 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bench.harness import (
    Summary,
    add_database_arguments,
    figures,
    open_transaction,
    scratch_database,
    summarise,
)
from bench.history import server_version
from hub.context import Hub
from hub.db import WRITES, migrate
from hub.models import (
    Agent,
    AgentRouting,
    Complaint,
    Conversation,
    Customer,
    RoutingState,
    utcnow,
)
from hub.settings import load_settings
from routing.capacity import PRESENT, candidates_query, loads, loads_query
from routing.router import route_conversation
from routing.rules import Rules, load_rules
from routing.sla import fill_free_agents

TARGET = 5.0
TEAMS = ("key_accounts", "service", "standard", "pool")
CHANNELS = ("email", "email", "chat", "voice", "sms", "webform")
BASELINE = "bare queries"
DECISION = "decision"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__)
    add_database_arguments(parser)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--arrivals", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


async def fill(hub: Hub, arguments: argparse.Namespace, shuffle: random.Random) -> list[int]:
    """Agents and customers; the ids of the key-account agents."""
    async with hub.work() as work:
        agents = [
            Agent(
                email=f"agent{n}@bench.test",
                name=f"Agent {n}",
                role="agent",
                language="de" if n % 3 == 0 else "en",
                languages=["de", "en"] if n % 5 == 0 else [],
                teams=[TEAMS[n % len(TEAMS)], *(["pool"] if n % 2 else [])],
                presence="online" if shuffle.random() < 0.7 else "offline",
                presence_changed_at=utcnow(),
            )
            for n in range(arguments.agents)
        ]
        work.session.add_all(agents)
        await work.session.flush()
        key_accounts = [a.id for a in agents if "key_accounts" in a.teams]
        for agent_id in key_accounts:
            deputy = shuffle.choice([other for other in key_accounts if other != agent_id])
            work.session.add(
                AgentRouting(agent_id=agent_id, tiers=[], capacity={}, deputy_agent_id=deputy)
            )
        customers = [
            Customer(
                name=f"Customer {n}",
                tier=tier,
                key_account_agent_id=shuffle.choice(key_accounts) if tier == "A" else None,
                language="de" if shuffle.random() < 0.4 else "en",
                revenue=Decimal(shuffle.randint(0, 100_000)),
            )
            for n in range(arguments.customers)
            for tier in [shuffle.choices("ABC", weights=(10, 30, 60))[0]]
        ]
        work.session.add_all(customers)
        await work.session.flush()
        for customer in shuffle.sample(customers, len(customers) // 20):
            work.session.add(Complaint(customer_id=customer.id, subject="Broken"))
    return key_accounts


async def bare_queries(
    session: AsyncSession,
    rules: Rules,
    conversation: Conversation,
    customer: Customer,
    complaint: bool,
) -> None:
    """The SELECTs a decision reads, as plain rows: no deciding, no writing."""
    key_account = customer.key_account_agent_id
    deputy = None
    if key_account is not None:
        deputy = await session.scalar(
            select(AgentRouting.deputy_agent_id).where(AgentRouting.agent_id == key_account)
        )
    tier = customer.tier or "C"
    queue = rules.match(tier, complaint, conversation.channel).queue
    rows = (await session.execute(candidates_query((key_account, deputy), queue))).all()
    (await session.execute(loads_query([row.id for row in rows], conversation.channel))).all()
    state = RoutingState.__table__
    (await session.execute(select(state).where(state.c.conversation_id == conversation.id))).all()


async def arrive(hub: Hub, customer_id: int, channel: str) -> int:
    async with hub.work() as work:
        conversation = Conversation(customer_id=customer_id, channel=channel, subject="Hello")
        work.session.add(conversation)
        await work.session.flush()
        return conversation.id


async def time_baseline(hub: Hub, rules: Rules, conversation_id: int, complaint: bool) -> float:
    async with hub.sessions() as session:
        conversation = await session.get(Conversation, conversation_id)
        customer = await session.get(Customer, conversation.customer_id)
        await open_transaction(session)
        started = time.perf_counter()
        await bare_queries(session, rules, conversation, customer, complaint)
        return time.perf_counter() - started


async def time_decision(
    hub: Hub, rules: Rules, conversation_id: int, complaint: bool, outcomes: Counter[str]
) -> float:
    async with hub.sessions() as session, session.begin():
        await session.connection(execution_options={WRITES: True})
        conversation = await session.get(Conversation, conversation_id)
        customer = await session.get(Customer, conversation.customer_id)
        started = time.perf_counter()
        decision, _state = await route_conversation(
            session, rules, conversation, customer, complaint
        )
        conversation.assignee_id, conversation.queue = decision.assignee_id, decision.queue
        await session.flush()
        elapsed = time.perf_counter() - started
    outcomes[f"{decision.rule}: {'assigned' if decision.assignee_id else 'waits'}"] += 1
    return elapsed


async def churn(hub: Hub, shuffle: random.Random, agent_ids: list[int]) -> None:
    """Agents close a conversation now and then, and change presence (untimed)."""
    async with hub.work() as work:
        open_ids = (
            await work.session.scalars(
                select(Conversation.id)
                .where(Conversation.status == "open", Conversation.assignee_id.is_not(None))
                .limit(50)
            )
        ).all()
        if open_ids:
            await work.session.execute(
                update(Conversation)
                .where(Conversation.id == shuffle.choice(open_ids))
                .values(status="closed", closed_at=utcnow())
            )
        if shuffle.random() < 0.05:
            await work.session.execute(
                update(Agent)
                .where(Agent.id == shuffle.choice(agent_ids))
                .values(
                    presence=shuffle.choice((*PRESENT, "offline")), presence_changed_at=utcnow()
                )
            )


async def simulate(
    hub: Hub, rules: Rules, arguments: argparse.Namespace, shuffle: random.Random
) -> tuple[dict[str, list[float]], Counter[str], int]:
    async with hub.sessions() as session:
        customers = list((await session.execute(select(Customer.id))).scalars())
        complained = set((await session.execute(select(Complaint.customer_id))).scalars())
        agent_ids = list((await session.execute(select(Agent.id))).scalars())
    samples: dict[str, list[float]] = {BASELINE: [], DECISION: []}
    outcomes: Counter[str] = Counter()
    pulled = 0
    for number in range(arguments.arrivals):
        customer_id = shuffle.choice(customers)
        conversation_id = await arrive(hub, customer_id, shuffle.choice(CHANNELS))
        complaint = customer_id in complained
        if shuffle.random() < 0.5:
            samples[BASELINE].append(await time_baseline(hub, rules, conversation_id, complaint))
            samples[DECISION].append(
                await time_decision(hub, rules, conversation_id, complaint, outcomes)
            )
        else:
            samples[DECISION].append(
                await time_decision(hub, rules, conversation_id, complaint, outcomes)
            )
            samples[BASELINE].append(await time_baseline(hub, rules, conversation_id, complaint))
        await churn(hub, shuffle, agent_ids)
        if number % 500 == 499:
            pulled += await fill_free_agents(hub)
    return samples, outcomes, pulled


async def check(hub: Hub, rules: Rules) -> str:
    """Nobody above capacity on any channel; every open conversation assigned or waiting."""
    async with hub.sessions() as session:
        profiles = {p.agent_id: p.capacity for p in await session.scalars(select(AgentRouting))}
        agent_ids = list(await session.scalars(select(Agent.id)))
        counted = await loads(session, agent_ids)
        over = [
            (agent_id, channel, load)
            for (agent_id, channel), load in counted.items()
            if load > int(profiles.get(agent_id, {}).get(channel, rules.capacity_for(channel)))
        ]
        lost = await session.scalar(
            select(func.count())
            .select_from(Conversation)
            .outerjoin(RoutingState, RoutingState.conversation_id == Conversation.id)
            .where(
                Conversation.status == "open",
                Conversation.assignee_id.is_(None),
                (RoutingState.waiting.is_not(True)),
            )
        )
    verdict = "ok" if not over and not lost else "FAILED"
    return (
        f"CHECK {verdict}: {len(over)} agent-channels above capacity, "
        f"{lost} open conversations neither assigned nor waiting"
    )


def report(samples: dict[str, list[float]], arguments: argparse.Namespace) -> list[str]:
    base, mine = figures(samples[BASELINE]), figures(samples[DECISION])
    lines = [f"{'case':<14}  {'p50 ms':>8}  {'p99 ms':>8}"]
    for name, found in ((BASELINE, base), (DECISION, mine)):
        lines.append(f"{name:<14}  {found.p50:>8.3f}  {found.p99:>8.3f}")
    lines.append(
        f"decision / bare queries: p50 {mine.p50 / base.p50:.2f}x, p99 {mine.p99 / base.p99:.2f}x"
    )
    verdict = "PASS" if mine.p50 <= TARGET * base.p50 else "FAIL"
    lines.append(f"{verdict}: the decision's p50 is within {TARGET:g}x of the bare queries'")
    summarise(
        Summary(
            f"routing decision ({arguments.agents} agents, {arguments.arrivals:,} arrivals)",
            f"p50 {mine.p50:.1f} ms, p99 {mine.p99:.1f} ms",
            f"its bare queries p50 {base.p50:.1f} ms",
            mine.p50 / base.p50,
            f"within {TARGET:g}x (ours; the issue sets none)",
            mine.p50 <= TARGET * base.p50,
        )
    )
    return lines


async def run(arguments: argparse.Namespace) -> int:
    shuffle = random.Random(arguments.seed)
    rules = load_rules()
    async with scratch_database(arguments.database_url, arguments.postgres) as url:
        await migrate(url)
        hub = Hub.create(load_settings(_env_file=None, database_url=url))
        try:
            print(
                f"bench.routing on {await server_version(hub)}: {arguments.agents} agents, "
                f"{arguments.customers} customers, {arguments.arrivals} arrivals"
            )
            await fill(hub, arguments, shuffle)
            samples, outcomes, pulled = await simulate(hub, rules, arguments, shuffle)
            for line in report(samples, arguments):
                print(line)
            for outcome, count in sorted(outcomes.items()):
                print(f"  {count:>6}  {outcome}")
            print(f"  {pulled:>6}  pulled by free agents at the periodic fill")
            line = await check(hub, rules)
            print(line)
            return 0 if line.startswith("CHECK ok") else 1
        finally:
            await hub.close()


def main(argv: list[str] | None = None) -> None:
    raise SystemExit(asyncio.run(run(parse_arguments(argv))))


if __name__ == "__main__":
    main()
