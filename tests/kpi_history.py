"""A generated hub history whose figures are known: the rows, and the truth computed in Python.

`generate(seed)` draws customers, conversations, contacts, complaints, agents
with their presence changes, campaigns with their outbox rows, blocks and
consents, at whole seconds around a fixed `NOW`; `store(hub, history)` writes
them. The truth, each figure recomputed from the drawn values, is
`tests/kpi_truth.py`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.context import Hub
from hub.kpis.query import Filters, KpiQuery, Period
from hub.models import (
    Agent,
    Block,
    Campaign,
    Complaint,
    Consent,
    Conversation,
    Customer,
    Erasure,
    Identity,
    Interaction,
    OutboxMessage,
    PresenceChange,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PERIOD = Period(NOW - timedelta(days=30), NOW)
CHANNELS = ("email", "sms", "chat", "voice")
QUEUES = ("standard", "pool", "key_accounts", None)
TIERS = ("A", "B", "C", None)
AGE_LIMITS = (
    ("under_1h", timedelta(hours=1)),
    ("1h_4h", timedelta(hours=4)),
    ("4h_24h", timedelta(hours=24)),
    ("1d_3d", timedelta(days=3)),
    ("3d_7d", timedelta(days=7)),
)


def moment(draw: random.Random, days_back: float) -> datetime:
    """A whole second within the last `days_back` days before NOW."""
    return NOW - timedelta(seconds=draw.randint(1, int(days_back * 86400)))


@dataclass
class History:
    agents: list[dict[str, Any]] = field(default_factory=list)
    presence: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)
    conversations: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    complaints: list[dict[str, Any]] = field(default_factory=list)
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    blocks: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)
    erased: set[int] = field(default_factory=set)
    merged: set[int] = field(default_factory=set)

    def tier(self, customer_id: int) -> str:
        return self.customers[customer_id - 1]["tier"] or "none"


def _agents(history: History, draw: random.Random) -> None:
    teams = (["standard"], ["standard", "pool"], ["key_accounts"], ["pool"])
    for number, team in enumerate(teams, start=101):
        history.agents.append(
            {
                "id": number,
                "name": f"Agent {number}",
                "teams": team,
                "is_active": number != 104,
                "role": "agent",
            }
        )
        at = NOW - timedelta(days=45)
        while True:
            at += timedelta(minutes=draw.randint(30, 3000))
            if at >= NOW:
                break
            status = draw.choice(("online", "away", "offline"))
            history.presence.append({"agent_id": number, "status": status, "at": at})


def _customers(history: History, draw: random.Random, count: int) -> None:
    for number in range(1, count + 1):
        name = draw.choice(("Anna Berg", "Max Muster", f"Kunde {number}", f"Kundin {number}"))
        company = draw.choice(("Acme GmbH", None, f"Firma {number}"))
        history.customers.append(
            {"id": number, "name": name, "company": company, "tier": draw.choice(TIERS)}
        )
        if draw.random() < 0.8:
            history.identities.append(
                {"customer_id": number, "kind": "email", "value": f"k{number}@example.com"}
            )
        if draw.random() < 0.6:
            history.identities.append(
                {"customer_id": number, "kind": "phone", "value": f"+49151{number:08d}"}
            )
    # Addresses that reach one mailbox: a +tag and dots in the local part.
    history.identities += [
        {"customer_id": 1, "kind": "email", "value": "max.muster+shop@mail.test"},
        {"customer_id": 2, "kind": "email", "value": "maxmuster@mail.test"},
        {"customer_id": 3, "kind": "email", "value": "m.a.x.muster@mail.test"},
    ]
    history.merged = {count - 1}
    history.erased = {count}


def _conversations(history: History, draw: random.Random, count: int) -> None:
    customers = len(history.customers)
    for number in range(1, count + 1):
        created = moment(draw, 60)
        answered = (
            created + timedelta(seconds=draw.randint(30, 50_000)) if draw.random() < 0.7 else None
        )
        if answered is not None and answered > NOW:
            answered = None
        due = created + timedelta(hours=draw.choice((1, 8, 24))) if draw.random() < 0.8 else None
        closed = (
            created + timedelta(seconds=draw.randint(600, 400_000)) if draw.random() < 0.5 else None
        )
        if closed is not None and closed > NOW:
            closed = None
        history.conversations.append(
            {
                "id": number,
                "customer_id": draw.randint(1, customers),
                "channel": draw.choice(CHANNELS),
                "queue": draw.choice(QUEUES),
                "assignee_id": draw.choice((101, 102, 103, 104, None)),
                "created_at": created,
                "first_response_at": answered,
                "sla_due_at": due,
                "closed_at": closed,
                "status": "closed" if closed else "open",
            }
        )


def _contacts(history: History, draw: random.Random, count: int) -> None:
    customers = len(history.customers)
    for _ in range(count):
        # A few customers write far more often than the rest.
        customer = draw.randint(1, 5) if draw.random() < 0.3 else draw.randint(1, customers)
        history.contacts.append(
            {
                "customer_id": customer,
                "channel": draw.choice((*CHANNELS, "webform")),
                "direction": draw.choice(("inbound", "inbound", "outbound")),
                "occurred_at": moment(draw, 60),
            }
        )


def _complaints(history: History, draw: random.Random, count: int) -> None:
    for number in range(1, count + 1):
        opened = moment(draw, 60)
        resolved = (
            opened + timedelta(seconds=draw.randint(3600, 900_000)) if draw.random() < 0.6 else None
        )
        if resolved is not None and resolved > NOW:
            resolved = None
        history.complaints.append(
            {
                "id": number,
                "customer_id": draw.randint(1, len(history.customers)),
                "opened_at": opened,
                "resolved_at": resolved,
                "status": "resolved" if resolved else draw.choice(("open", "in_progress")),
            }
        )


def _campaigns(history: History, draw: random.Random) -> None:
    starts = (NOW - timedelta(days=20), NOW - timedelta(days=5), NOW - timedelta(days=45))
    for number, started in enumerate(starts, start=1):
        channel = "email" if number != 2 else "sms"
        history.campaigns.append(
            {"id": number, "name": f"Campaign {number}", "channel": channel, "started_at": started}
        )
        for customer in range(1, len(history.customers) - 1):
            status = draw.choice(("sent", "sent", "delivered", "blocked", "failed", "queued"))
            sent = (
                started + timedelta(minutes=draw.randint(1, 600))
                if status in ("sent", "delivered")
                else None
            )
            address = f"k{customer}@example.com" if channel == "email" else f"+49151{customer:08d}"
            reasons = (
                [draw.choice(("consent:marketing", "block:unsubscribe", "frequency_cap"))]
                if status == "blocked"
                else []
            )
            if status == "blocked" and draw.random() < 0.3:
                reasons.append("open_complaint")
            row = {
                "campaign_id": number,
                "customer_id": customer,
                "recipient": address,
                "channel": channel,
                "status": status,
                "sent_at": sent,
                "created_at": started,
                "blocked_reasons": reasons,
            }
            history.outbox.append(row)
            if sent is None:
                continue
            if draw.random() < 0.15:
                reason = "hard_bounce" if channel == "email" else "sms_stop"
                kind = "email" if channel == "email" else "phone"
                history.blocks.append(
                    {
                        "kind": kind,
                        "value": address,
                        "reason": reason,
                        "created_at": sent + timedelta(hours=1),
                    }
                )
            elif draw.random() < 0.1 and channel == "email":
                history.blocks.append(
                    {
                        "kind": "email",
                        "value": address,
                        "reason": "unsubscribe",
                        "created_at": sent + timedelta(days=1),
                    }
                )
            if draw.random() < 0.4:
                # A reply: inside the window, exactly at its end, or just after it.
                after = draw.choice(
                    (
                        timedelta(days=2),
                        timedelta(days=7),
                        timedelta(days=7, seconds=1),
                        timedelta(days=12),
                    )
                )
                if sent + after <= NOW:
                    history.contacts.append(
                        {
                            "customer_id": customer,
                            "channel": channel,
                            "direction": "inbound",
                            "occurred_at": sent + after,
                        }
                    )


def _consents(history: History, draw: random.Random) -> None:
    for customer in range(1, len(history.customers) + 1):
        for channel in ("email", "sms"):
            if draw.random() < 0.5:
                continue
            evidence = {} if draw.random() < 0.4 else {"source": "webform", "ip": "192.0.2.1"}
            state = draw.choice(("granted", "pending_confirmation", "revoked"))
            history.consents.append(
                {
                    "customer_id": customer,
                    "channel": channel,
                    "purpose": "marketing",
                    "state": state,
                    "evidence": evidence,
                }
            )


def generate(
    seed: int = 7, customers: int = 40, conversations: int = 240, contacts: int = 600
) -> History:
    draw = random.Random(seed)
    history = History()
    _agents(history, draw)
    _customers(history, draw, customers)
    _conversations(history, draw, conversations)
    _contacts(history, draw, contacts)
    _complaints(history, draw, 40)
    _campaigns(history, draw)
    _consents(history, draw)
    return history


async def store(hub: Hub, history: History) -> None:
    async with hub.work() as work:
        session = work.session
        for agent in history.agents:
            session.add(Agent(email=f"a{agent['id']}@omnihub.test", language="en", **agent))
        await session.flush()
        session.add_all(PresenceChange(**change) for change in history.presence)
        for customer in history.customers:
            session.add(Customer(**customer))
        await session.flush()
        merged_into = {cid: 1 for cid in history.merged}
        for cid, target in merged_into.items():
            (await session.get(Customer, cid)).merged_into_id = target
        session.add_all(Erasure(customer_id=cid, counts={}) for cid in history.erased)
        session.add_all(Identity(**identity) for identity in history.identities)
        session.add_all(Conversation(**conversation) for conversation in history.conversations)
        session.add_all(Interaction(kind="message", **contact) for contact in history.contacts)
        session.add_all(
            Complaint(subject="Beschwerde", **complaint) for complaint in history.complaints
        )
        for campaign in history.campaigns:
            session.add(Campaign(status="done", **campaign))
        await session.flush()
        for number, row in enumerate(history.outbox):
            session.add(OutboxMessage(idempotency_key=f"k{number}", purpose="marketing", **row))
        session.add_all(Block(scope="all", **block) for block in history.blocks)
        session.add_all(Consent(**consent) for consent in history.consents)


def query(**filters: str) -> KpiQuery:
    return KpiQuery(PERIOD, Filters(**filters), 7, NOW)
