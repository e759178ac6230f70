"""The demo: a small call center's agents, customers and weeks of history, for `omnihub demo`.

Everything goes through the hub's own entries (`create_agent`, `create_customer`,
`accept_inbound`, the `do_*` actions), so the demo shows what the hub really
stores. The story is ordered data (`hub.demo_story`): `STORY` is played step by
step, each step in a transaction of its own. The data is fixed; only the dates move with today, so
that the history spans the last four weeks and a birthday is always coming up.

The hub stamps an agent's action (a note, a resolution, a closing) with the
current time; the demo moves those stamps back to when its story says they
happened, since the story happened over weeks and not in the second it is seeded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from hub.agents import create_agent, create_token
from hub.complaints import do_open_complaint, do_update_complaint, get_complaint
from hub.context import Hub, Work
from hub.conversations import do_add_note, do_set_status, get_conversation
from hub.customers import create_customer
from hub.demo_story import (
    AGENTS,
    CUSTOMER,
    CUSTOMERS,
    KEY_ACCOUNT_AGENT,
    STORY,
    Close,
    Contact,
    DemoCustomer,
    Note,
    OpenComplaint,
    UpdateComplaint,
)
from hub.intake import accept_inbound
from hub.models import Agent, Interaction
from hub.values import Inbound


@dataclass(frozen=True, slots=True)
class DemoLogin:
    role: str
    email: str
    password: str
    token: str


# -- playing it ------------------------------------------------------------------


@dataclass
class Cast:
    """What the steps refer to: agents by key; threads and their complaints by label."""

    today: date
    agents: dict[str, int] = field(default_factory=dict)
    conversations: dict[str, int] = field(default_factory=dict)
    complaints: dict[str, int] = field(default_factory=dict)
    contacts: int = 0

    def moment(self, days_ago: int, at: str) -> datetime:
        return datetime.combine(
            self.today - timedelta(days=days_ago), time.fromisoformat(at), tzinfo=UTC
        )


async def seed_demo(hub: Hub) -> list[DemoLogin]:
    """Fill an empty hub with the demo; returns the agents' logins and API tokens."""
    cast = Cast(today=datetime.now(UTC).date())
    logins = await add_agents(hub, cast)
    await add_customers(hub, cast)
    for step in STORY:
        await PLAYERS[type(step)](hub, cast, step)
    return logins


async def add_agents(hub: Hub, cast: Cast) -> list[DemoLogin]:
    logins = []
    async with hub.work() as work:
        for demo in AGENTS:
            agent = await create_agent(
                work.session, demo.email, demo.name, demo.role, demo.password, demo.languages[0]
            )
            agent.languages = list(demo.languages)
            agent.teams = list(demo.teams)
            cast.agents[demo.key] = agent.id
            token = await create_token(work.session, agent)
            logins.append(DemoLogin(demo.role, agent.email, demo.password, token))
    return logins


async def add_customers(hub: Hub, cast: Cast) -> None:
    admin, region = cast.agents["admin"], hub.settings.default_region
    async with hub.work() as work:
        for demo in (demo for demo in CUSTOMERS if not demo.is_prospect):
            phones = [demo.phone] if demo.phone else []
            fields = profile(demo, cast)
            customer = await create_customer(
                work.session, admin, region, fields, [demo.email], phones
            )
            work.emit("customer.created", customer_id=customer.id)


def profile(demo: DemoCustomer, cast: Cast) -> dict[str, Any]:
    return {
        "name": demo.name,
        "company": demo.company,
        "tier": demo.tier,
        "revenue": Decimal(demo.revenue),
        "language": demo.language,
        "birthday": birthday(demo, cast.today),
        "tags": list(demo.tags),
        "key_account_agent_id": cast.agents[KEY_ACCOUNT_AGENT] if demo.tier == "A" else None,
    }


def birthday(demo: DemoCustomer, today: date) -> date | None:
    if demo.birthday_in_days is None:
        return date.fromisoformat(demo.birthday) if demo.birthday else None
    upcoming = today + timedelta(days=demo.birthday_in_days)
    return upcoming.replace(year=1976)  # a leap year, so that 29 February works too


async def play_contact(hub: Hub, cast: Cast, contact: Contact) -> None:
    customer = CUSTOMER[contact.customer]
    kind, address = customer.sender(contact.channel)
    cast.contacts += 1
    result = await accept_inbound(
        hub,
        Inbound(
            channel=contact.channel,
            sender_kind=kind,
            sender=address,
            sender_name=customer.name,
            external_id=f"demo-{cast.contacts}",
            subject=contact.subject,
            text=contact.text,
            thread_key=f"demo-{contact.thread}" if contact.thread else None,
            direction=contact.direction,
            kind="call" if contact.channel == "voice" else "message",
            is_complaint=contact.complaint,
            received_at=cast.moment(contact.days_ago, contact.at),
            metadata={"duration_seconds": contact.call_seconds} if contact.call_seconds else {},
        ),
    )
    if contact.label is not None:
        cast.conversations[contact.label] = result.conversation_id
        if result.complaint_id is not None:
            cast.complaints[contact.label] = result.complaint_id


async def play_note(hub: Hub, cast: Cast, note: Note) -> None:
    async with hub.work() as work:
        agent = await _agent(work, cast, note.agent)
        conversation = await get_conversation(work.session, cast.conversations[note.label])
        added = await do_add_note(work, agent, conversation, note.text)
        added.occurred_at = cast.moment(note.days_ago, note.at)


async def play_open_complaint(hub: Hub, cast: Cast, step: OpenComplaint) -> None:
    opened_at = cast.moment(step.days_ago, step.at)
    async with hub.work() as work:
        conversation_id = cast.conversations[step.label]
        conversation = await get_conversation(work.session, conversation_id)
        complaint = await do_open_complaint(
            work,
            cast.agents[step.agent],
            conversation.customer_id,
            step.subject,
            step.description,
            step.severity,
            datetime.now(UTC) + timedelta(days=step.due_in_days),
            (conversation_id,),
        )
        complaint.opened_at = opened_at
        cast.complaints[step.label] = complaint.id


async def play_update_complaint(hub: Hub, cast: Cast, step: UpdateComplaint) -> None:
    async with hub.work() as work:
        complaint = await get_complaint(work.session, cast.complaints[step.label])
        await do_update_complaint(work, cast.agents[step.agent], complaint, dict(step.changes))
        if complaint.resolved_at is not None:
            complaint.resolved_at = cast.moment(step.days_ago, step.at)


async def play_close(hub: Hub, cast: Cast, step: Close) -> None:
    closed_at = cast.moment(step.days_ago, step.at)
    async with hub.work() as work:
        agent = await _agent(work, cast, step.agent)
        conversation = await get_conversation(work.session, cast.conversations[step.label])
        await do_set_status(work, agent, conversation, "closed")
        await work.session.flush()
        conversation.closed_at = closed_at
        statement = select(Interaction).where(
            Interaction.conversation_id == conversation.id, Interaction.kind == "status_change"
        )
        for entry in await work.session.scalars(statement):
            entry.occurred_at = closed_at


async def _agent(work: Work, cast: Cast, key: str) -> Agent:
    agent = await work.session.get(Agent, cast.agents[key])
    assert agent is not None  # created by add_agents
    return agent


Player = Callable[[Hub, Cast, Any], Awaitable[None]]
PLAYERS: dict[type, Player] = {
    Contact: play_contact,
    Note: play_note,
    OpenComplaint: play_open_complaint,
    UpdateComplaint: play_update_complaint,
    Close: play_close,
}
