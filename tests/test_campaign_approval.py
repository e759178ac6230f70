"""Campaigns before sending: content checked at save, preview by reason, four-eyes approval."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from hub.blocks import do_add_block
from hub.campaigns.sending import CampaignSender
from hub.context import Hub
from hub.delivery import RecordingSender
from hub.models import (
    AuditEntry,
    Campaign,
    Complaint,
    utcnow,
)
from tests.campaign_steps import add_customer, approved, create, outbox, start
from tests.conftest import SignedIn

# Content


async def test_a_template_with_a_syntax_error_is_refused_at_save_with_its_line(
    client: httpx.AsyncClient, agent: SignedIn
):
    template = {"variants": {"en": {"subject": "Hi", "text": "Hello\n{% if customer.name %}"}}}
    answer = await client.post(
        "/api/campaigns",
        json={"name": "x", "channel": "email", "segment": {}, "template": template},
        headers=agent.headers,
    )

    assert answer.status_code == 422
    assert "en/text line 2" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Hello {{ nickname }}", "unknown field 'nickname'"),
        ("Hello\n\n{{ customer.email }}", "line 3: unknown field customer.email"),
        ("{{ customer.__class__ }}", "'__class__' is not allowed"),
    ],
)
async def test_an_unknown_field_is_refused_at_save_naming_it_and_its_line(
    client: httpx.AsyncClient, agent: SignedIn, text: str, named: str
):
    template = {"variants": {"en": {"subject": "Hi", "text": text}}}
    answer = await client.post(
        "/api/campaigns",
        json={"name": "x", "channel": "email", "segment": {}, "template": template},
        headers=agent.headers,
    )

    assert answer.status_code == 422
    assert named in answer.json()["detail"]


async def test_an_undefined_value_at_render_is_a_422_at_preview_not_a_blank(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    template = {"variants": {"en": {"subject": "Hi", "text": "Hello\n{{ customer.name.nope }}"}}}
    campaign = await create(client, agent, template=template)

    answer = await client.post(f"/api/campaigns/{campaign['id']}/preview", headers=agent.headers)

    assert answer.status_code == 422
    assert "en/text line 2" in answer.json()["detail"]
    assert "nope" in answer.json()["detail"]


async def test_the_preview_renders_each_customer_in_their_language_with_a_fallback(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await add_customer(hub, "Jörg Müller", "joerg@example.com", language="de")
    await add_customer(hub, "Ana Lima", "ana@example.com", language="pt")
    campaign = await create(client, agent)

    answer = await client.post(
        f"/api/campaigns/{campaign['id']}/preview", json={"samples": 5}, headers=agent.headers
    )

    samples = answer.json()["samples"]
    assert [(s["language"], s["subject"]) for s in samples] == [
        ("de", "Neues für Jörg"),
        ("en", "News for Ana"),
    ]
    assert samples[1]["html"] == "<p>Hello Ana Lima</p>"


# Preview


async def test_the_preview_counts_who_the_gate_excludes_by_reason_before_anything_is_sent(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await add_customer(hub, "Ok One", "ok1@example.com")
    await add_customer(hub, "Ok Two", "ok2@example.com")
    await add_customer(hub, "No Consent", "none@example.com", consent=None)
    await add_customer(hub, "Unconfirmed", "unconfirmed@example.com", consent="unconfirmed")
    bounced = await add_customer(hub, "Bounced", "bounced@example.com")
    unsubscribed = await add_customer(hub, "Unsub", "unsub@example.com")
    legal = await add_customer(hub, "Legal", "legal@example.com")
    complaining = await add_customer(hub, "Angry", "angry@example.com")
    await add_customer(hub, "No Address", None)
    async with hub.work() as work:
        await do_add_block(work, None, "email", "bounced@example.com", "hard_bounce", "DE")
        await do_add_block(
            work, None, "email", "unsub@example.com", "unsubscribe", "DE", "marketing"
        )
        await do_add_block(work, None, "customer", str(legal), "legal", "DE")
        work.session.add(Complaint(customer_id=complaining, subject="Broken", status="open"))
    campaign = await create(client, agent)

    answer = await client.post(f"/api/campaigns/{campaign['id']}/preview", headers=agent.headers)

    figures = answer.json()["figures"]
    assert figures == {
        "members": 9,
        "without_address": 1,
        "excluded": 6,
        "excluded_by_reason": {
            "hard_bounce": 1,
            "legal_block": 1,
            "no_marketing_consent": 2,
            "open_complaint": 1,
            "unsubscribed": 1,
        },
        "recipients": 2,
    }
    assert await outbox(hub, campaign["id"]) == []
    del bounced, unsubscribed


# Four eyes


async def test_the_author_cannot_approve_their_own_campaign(
    hub: Hub, client: httpx.AsyncClient, make_agent
):
    author = await make_agent("supervisor")
    campaign = await create(client, author)
    path = f"/api/campaigns/{campaign['id']}"
    await client.post(f"{path}/preview", headers=author.headers)
    await client.post(f"{path}/submit", headers=author.headers)

    answer = await client.post(f"{path}/approve", headers=author.headers)

    assert answer.status_code == 403
    assert (await client.get(path, headers=author.headers)).json()["status"] == "pending_approval"


async def test_an_agent_without_the_supervisor_role_cannot_approve(
    client: httpx.AsyncClient, agent: SignedIn, make_agent
):
    other = await make_agent("agent")
    campaign = await create(client, agent)
    path = f"/api/campaigns/{campaign['id']}"
    await client.post(f"{path}/preview", headers=agent.headers)
    await client.post(f"{path}/submit", headers=agent.headers)

    answer = await client.post(f"{path}/approve", headers=other.headers)

    assert answer.status_code == 403


async def test_sending_a_campaign_that_is_not_approved_is_409(
    client: httpx.AsyncClient, agent: SignedIn
):
    campaign = await create(client, agent)
    path = f"/api/campaigns/{campaign['id']}"
    as_draft = await start(client, campaign["id"], agent)
    await client.post(f"{path}/preview", headers=agent.headers)
    await client.post(f"{path}/submit", headers=agent.headers)
    as_pending = await start(client, campaign["id"], agent)

    assert (as_draft.status_code, as_pending.status_code) == (409, 409)


async def test_a_campaign_cannot_be_submitted_without_a_preview_of_its_content(
    client: httpx.AsyncClient, agent: SignedIn
):
    campaign = await create(client, agent)

    answer = await client.post(f"/api/campaigns/{campaign['id']}/submit", headers=agent.headers)

    assert answer.status_code == 409


async def test_any_change_voids_the_approval_and_the_campaign_cannot_be_sent(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    campaign = await approved(client, agent, supervisor)
    path = f"/api/campaigns/{campaign['id']}"

    changed = await client.patch(path, json={"segment": {"tiers": ["A"]}}, headers=agent.headers)
    sent = await start(client, campaign["id"], agent)

    assert changed.json()["status"] == "draft"
    assert changed.json()["approved_by_agent_id"] is None
    assert sent.status_code == 409


async def test_an_approval_expires(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    campaign = await approved(client, agent, supervisor)
    async with hub.work() as work:
        await work.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign["id"])
            .values(approval_expires_at=utcnow() - timedelta(seconds=1))
        )

    answer = await start(client, campaign["id"], agent)

    assert answer.status_code == 409
    assert "expired" in answer.json()["detail"]
    shown = await client.get(f"/api/campaigns/{campaign['id']}", headers=agent.headers)
    assert shown.json()["status"] == "draft"


async def test_recipients_that_changed_since_the_approval_void_it(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    campaign = await approved(client, agent, supervisor)
    await add_customer(hub, "Bert", "bert@example.com")

    answer = await start(client, campaign["id"], agent)

    assert answer.status_code == 409
    assert "recipients changed" in answer.json()["detail"]


async def test_every_step_of_a_campaign_is_audited(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    campaign = await approved(client, agent, supervisor)
    await start(client, campaign["id"], agent)
    await CampaignSender(hub, [RecordingSender()]).run(campaign["id"])

    async with hub.sessions() as session:
        steps = list(
            await session.execute(
                select(AuditEntry.action, AuditEntry.actor_agent_id)
                .where(AuditEntry.entity == "campaign", AuditEntry.entity_id == campaign["id"])
                .order_by(AuditEntry.id)
            )
        )

    assert [tuple(s) for s in steps] == [
        ("campaign.created", agent.id),
        ("campaign.previewed", None),
        ("campaign.submitted", agent.id),
        ("campaign.approved", supervisor.id),
        ("campaign.sending", agent.id),
        ("campaign.done", None),
    ]
