"""Campaign steps the tests share: a customer with an address and a consent, a campaign
created, approved by a second person, started, and its outbox rows."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from hub.context import Hub
from hub.models import (
    Consent,
    Customer,
    Identity,
    OutboxMessage,
)
from tests.conftest import SignedIn

CONFIRMED = {"confirmed_at": "2026-11-01T10:00:00+00:00"}
TEMPLATE = {
    "fallback": "en",
    "variants": {
        "en": {
            "subject": "News for {{ customer.first_name }}",
            "text": "Hello {{ customer.name }},\nour news.\nUnsubscribe: {{ unsubscribe_url }}",
            "html": "<p>Hello {{ customer.name }}</p>",
        },
        "de": {
            "subject": "Neues für {{ customer.first_name }}",
            "text": "Hallo {{ customer.name }},\nunsere Neuigkeiten.\n{{ unsubscribe_url }}",
        },
    },
}


async def add_customer(
    hub: Hub,
    name: str,
    email: str | None = None,
    phone: str | None = None,
    *,
    language: str = "en",
    tier: str = "B",
    consent: str | None = "confirmed",
    channel: str = "email",
    tags: list[str] | None = None,
) -> int:
    """A customer with an address and (by default) a confirmed marketing consent."""
    async with hub.work() as work:
        customer = Customer(name=name, language=language, tier=tier, tags=tags or [])
        work.session.add(customer)
        await work.session.flush()
        if email:
            work.session.add(Identity(customer_id=customer.id, kind="email", value=email))
        if phone:
            work.session.add(Identity(customer_id=customer.id, kind="phone", value=phone))
        if consent is not None:
            state, evidence = {
                "confirmed": ("granted", CONFIRMED),
                "unconfirmed": ("granted", {}),
                "revoked": ("revoked", {}),
            }[consent]
            work.session.add(
                Consent(
                    customer_id=customer.id,
                    channel=channel,
                    purpose="marketing",
                    state=state,
                    source="test",
                    evidence=evidence,
                )
            )
        return customer.id


async def create(client: httpx.AsyncClient, author: SignedIn, **changes: Any) -> dict[str, Any]:
    body = {"name": "Spring news", "channel": "email", "segment": {}, "template": TEMPLATE}
    answer = await client.post("/api/campaigns", json={**body, **changes}, headers=author.headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def approved(
    client: httpx.AsyncClient, author: SignedIn, approver: SignedIn, **changes: Any
) -> dict[str, Any]:
    """A campaign previewed, submitted and approved by a second person."""
    campaign = await create(client, author, **changes)
    path = f"/api/campaigns/{campaign['id']}"
    assert (await client.post(f"{path}/preview", headers=author.headers)).status_code == 200
    assert (await client.post(f"{path}/submit", headers=author.headers)).status_code == 200
    answer = await client.post(f"{path}/approve", headers=approver.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def start(client: httpx.AsyncClient, campaign_id: int, who: SignedIn) -> httpx.Response:
    return await client.post(f"/api/campaigns/{campaign_id}/send", headers=who.headers)


async def outbox(hub: Hub, campaign_id: int) -> list[OutboxMessage]:
    async with hub.sessions() as session:
        statement = (
            select(OutboxMessage)
            .where(OutboxMessage.campaign_id == campaign_id)
            .order_by(OutboxMessage.id)
        )
        return list(await session.scalars(statement))
