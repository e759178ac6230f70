"""Campaigns: content checked at save, four-eyes approval, preview by reason, sending."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from hub.blocks import do_add_block
from hub.campaigns.approval import compile_content
from hub.campaigns.handover import Handover
from hub.campaigns.job import CampaignJob
from hub.campaigns.sending import CampaignSender, Pacer
from hub.context import Hub
from hub.delivery import RecordingSender, UnknownDeliveryError
from hub.models import (
    AuditEntry,
    Campaign,
    Complaint,
    Consent,
    Customer,
    Identity,
    Interaction,
    OutboxMessage,
    utcnow,
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


# Sending


async def test_an_approved_campaign_sends_one_message_per_allowed_recipient(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    anna = await add_customer(hub, "Anna Alt", "anna@example.com")
    await add_customer(hub, "Bert", "bert@example.com", language="de")
    await add_customer(hub, "Carla", "carla@example.com", consent=None)
    campaign = await approved(client, agent, supervisor)
    answer = await start(client, campaign["id"], agent)
    sender = RecordingSender()

    await CampaignSender(hub, [sender]).run(campaign["id"])

    assert answer.status_code == 202
    assert sorted(o.recipient for o in sender.sent) == ["anna@example.com", "bert@example.com"]
    first = next(o for o in sender.sent if o.recipient == "anna@example.com")
    assert first.subject == "News for Anna"
    assert first.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first.headers["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/unsubscribe/")
    shown = (await client.get(f"/api/campaigns/{campaign['id']}", headers=agent.headers)).json()
    assert shown["status"] == "done"
    assert {k: shown["progress"][k] for k in ("queued", "sent", "blocked", "total")} == {
        "queued": 0,
        "sent": 2,
        "blocked": 1,
        "total": 3,
    }
    async with hub.sessions() as session:
        history = list(
            await session.scalars(
                select(Interaction).where(
                    Interaction.customer_id == anna, Interaction.kind == "campaign"
                )
            )
        )
    assert [h.subject for h in history] == ["News for Anna"]


async def sent_with_an_unknown_delivery(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
) -> tuple[dict[str, Any], RecordingSender]:
    """A campaign sent to the customers added so far; the first message's delivery unknown."""
    campaign = await approved(client, agent, supervisor)
    await start(client, campaign["id"], agent)
    sender = RecordingSender()
    sender.fail_next(UnknownDeliveryError("the connection broke after the end of data"))
    await CampaignSender(hub, [sender]).run(campaign["id"])
    return campaign, sender


async def test_a_supervisor_lists_a_campaigns_messages_by_outcome_page_by_page(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    await add_customer(hub, "Bert", "bert@example.com")
    await add_customer(hub, "Carla", "carla@example.com", consent=None)
    campaign, sender = await sent_with_an_unknown_delivery(hub, client, agent, supervisor)
    url = f"/api/campaigns/{campaign['id']}/messages"

    def listed(answer: httpx.Response) -> list[tuple[str, str]]:
        assert answer.status_code == 200, answer.text
        return [(m["recipient"], m["status"]) for m in answer.json()["messages"]]

    unknown = await client.get(url, params={"status": "unknown"}, headers=supervisor.headers)
    blocked = await client.get(url, params={"status": "blocked"}, headers=supervisor.headers)
    pages, after = [], None
    while True:
        params = {"limit": 1} | ({"after": after} if after is not None else {})
        page = await client.get(url, params=params, headers=supervisor.headers)
        pages += listed(page)
        after = page.json()["next"]
        if after is None:
            break

    [(_, status)] = listed(unknown)
    assert status == "unknown"
    assert "broke after the end of data" in unknown.json()["messages"][0]["last_error"]
    assert listed(blocked) == [("carla@example.com", "blocked")]
    assert blocked.json()["messages"][0]["blocked_reasons"]
    assert sorted(pages) == sorted(
        [*listed(unknown), *listed(blocked), (sender.sent[0].recipient, "sent")]
    )


async def test_a_campaigns_messages_are_for_supervisors_and_a_wrong_outcome_is_named(
    client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    campaign = await approved(client, agent, supervisor)
    url = f"/api/campaigns/{campaign['id']}/messages"

    as_agent = await client.get(url, headers=agent.headers)
    wrong = await client.get(url, params={"status": "lost"}, headers=supervisor.headers)
    missing = await client.get("/api/campaigns/999999/messages", headers=supervisor.headers)

    assert as_agent.status_code == 403
    assert wrong.status_code == 422
    assert "unknown" in wrong.json()["detail"]
    assert missing.status_code == 404


async def test_sending_twice_or_resuming_a_finished_campaign_sends_nothing_again(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    campaign = await approved(client, agent, supervisor)
    await start(client, campaign["id"], agent)
    sender = RecordingSender()
    await CampaignSender(hub, [sender]).run(campaign["id"])

    again = await start(client, campaign["id"], agent)

    assert again.status_code == 409
    assert len(sender.sent) == 1


async def test_a_blocked_address_found_at_send_time_is_blocked_not_sent(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    await add_customer(hub, "Bert", "bert@example.com")
    campaign = await approved(client, agent, supervisor)
    await start(client, campaign["id"], agent)
    sender = CampaignSender(hub, [RecordingSender()])
    # Queue everything, then a bounce arrives before the worker sends.
    campaign_row = await sender.hold.take(campaign["id"])
    assert await sender._produce_page(campaign_row, compile_content(campaign_row))
    async with hub.work() as work:
        await do_add_block(work, None, "email", "bert@example.com", "hard_bounce", "DE")
    recording = RecordingSender()

    await CampaignSender(hub, [recording], name=sender.name).run(campaign["id"])

    assert [o.recipient for o in recording.sent] == ["anna@example.com"]
    rows = {r.recipient: r for r in await outbox(hub, campaign["id"])}
    assert rows["bert@example.com"].status == "blocked"
    assert rows["bert@example.com"].blocked_reasons == ["block:hard_bounce"]


async def test_cancelling_stops_every_message_that_has_not_left(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    for n in range(5):
        await add_customer(hub, f"C{n}", f"c{n}@example.com")
    campaign = await approved(client, agent, supervisor)
    await start(client, campaign["id"], agent)
    first = CampaignSender(hub, [RecordingSender()])
    row = await first.hold.take(campaign["id"])
    await first._produce_page(row, compile_content(row))

    answer = await client.post(f"/api/campaigns/{campaign['id']}/cancel", headers=agent.headers)
    recording = RecordingSender()
    async with hub.work() as work:  # the first holder is gone; another could take over
        await work.session.execute(
            update(Campaign).where(Campaign.id == campaign["id"]).values(holder=None)
        )

    with pytest.raises(Exception, match="cancelled"):
        await CampaignSender(hub, [recording]).run(campaign["id"])
    assert answer.json()["stopped"] == 5
    assert answer.json()["progress"]["cancelled"] == 5
    assert recording.sent == []


async def test_an_sms_campaign_says_how_to_opt_out(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", phone="+491511234567", channel="sms")
    template = {"variants": {"en": {"text": "Hi {{ customer.first_name }}, 20% off today"}}}
    campaign = await approved(client, agent, supervisor, channel="sms", template=template)
    await start(client, campaign["id"], agent)
    sender = RecordingSender()

    await CampaignSender(hub, [sender]).run(campaign["id"])

    (sms,) = sender.sent
    assert sms.recipient == "+491511234567"
    assert sms.text.startswith("Hi Anna, 20% off today\n")
    assert "STOP" in sms.text
    assert "List-Unsubscribe" not in sms.headers


# Segments


async def test_a_segment_filters_by_tier_language_tags_consent_and_complaints_with_a_live_count(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await add_customer(hub, "A de vip", "a@example.com", tier="A", language="de", tags=["vip"])
    await add_customer(hub, "A en vip", "b@example.com", tier="A", language="en", tags=["vip"])
    await add_customer(hub, "A de", "c@example.com", tier="A", language="de")
    angry = await add_customer(
        hub, "A de vip angry", "d@example.com", tier="A", language="de", tags=["vip", "press"]
    )
    await add_customer(hub, "C de vip", "e@example.com", tier="C", language="de", tags=["vip"])
    async with hub.work() as work:
        work.session.add(Complaint(customer_id=angry, subject="Broken", status="open"))

    async def count(segment: dict[str, Any]) -> int:
        answer = await client.post(
            "/api/segments/count", json={"filter": segment}, headers=agent.headers
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["count"]

    assert await count({}) == 5
    assert await count({"tiers": ["A"], "languages": ["de"]}) == 3
    assert await count({"tiers": ["A"], "tags": ["vip"]}) == 3
    assert await count({"tags": ["vip"], "without_tags": ["press"]}) == 3
    assert await count({"open_complaint": True}) == 1
    assert await count({"open_complaint": False, "tiers": ["A"]}) == 3
    assert await count({"consent": {"channel": "email", "state": "granted"}}) == 5
    assert await count({"consent": {"channel": "sms", "state": "none"}}) == 5
    assert await count({"fields": {"name": "A de"}}) == 1
    saved = await client.post(
        "/api/segments",
        json={"name": "German VIPs", "filter": {"languages": ["de"], "tags": ["vip"]}},
        headers=agent.headers,
    )
    assert saved.status_code == 201
    shown = await client.get(f"/api/segments/{saved.json()['id']}", headers=agent.headers)
    assert shown.json()["count"] == 3


async def test_a_segment_filters_by_the_last_contact(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    old = await add_customer(hub, "Old", "old@example.com")
    new = await add_customer(hub, "New", "new@example.com")
    await add_customer(hub, "Never", "never@example.com")
    async with hub.work() as work:
        for customer, when in ((old, "2025-01-10"), (new, "2026-10-01")):
            work.session.add(
                Interaction(
                    customer_id=customer,
                    channel="email",
                    direction="inbound",
                    occurred_at=utcnow().fromisoformat(when + "T10:00:00+00:00"),
                )
            )

    async def names(segment: dict[str, Any]) -> int:
        answer = await client.post(
            "/api/segments/count", json={"filter": segment}, headers=agent.headers
        )
        return answer.json()["count"]

    assert await names({"last_contact_before": "2026-01-01"}) == 1
    assert await names({"last_contact_after": "2026-01-01"}) == 1


@pytest.mark.parametrize(
    "segment",
    [
        {"tiers": ["Z"]},
        {"colour": "red"},
        {"last_contact_before": "soon"},
        {"fields": {"password": "x"}},
    ],
)
async def test_a_bad_segment_filter_is_a_422_naming_it(
    client: httpx.AsyncClient, agent: SignedIn, segment: dict[str, Any]
):
    answer = await client.post(
        "/api/segments/count", json={"filter": segment}, headers=agent.headers
    )

    assert answer.status_code == 422
    assert answer.json()["field"] == "segment"


async def test_campaign_tables_hold_no_personal_data(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna Geheim", "anna.geheim@example.com")
    campaign = await approved(client, agent, supervisor)
    await start(client, campaign["id"], agent)
    await CampaignSender(hub, [RecordingSender()]).run(campaign["id"])

    async with hub.sessions() as session:
        row = await session.get(Campaign, campaign["id"])
        stored = repr({c.name: getattr(row, c.name) for c in Campaign.__table__.columns})
        count = await session.scalar(select(func.count()).select_from(OutboxMessage))

    assert "geheim" not in stored.lower()
    assert count == 1


# The hub's campaign job, the console page, the rate


async def test_the_hubs_campaign_job_sends_a_campaign_nobody_holds_and_skips_a_held_one(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    free = await approved(client, agent, supervisor)
    held = await approved(client, agent, supervisor, name="Held")
    await start(client, free["id"], agent)
    await start(client, held["id"], agent)
    async with hub.work() as work:
        await work.session.execute(
            update(Campaign)
            .where(Campaign.id == held["id"])
            .values(holder="elsewhere", holder_until=utcnow() + timedelta(minutes=5))
        )
    sender = RecordingSender()
    job = CampaignJob(hub, {"email": [sender]})

    started = await job.start_due()
    for _sender, task in job.running.values():
        await task

    assert started == [free["id"]]
    assert [o.recipient for o in sender.sent] == ["anna@example.com"]


async def test_the_console_shows_a_campaigns_progress_bar(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    campaign = await approved(client, agent, supervisor)
    await start(client, campaign["id"], agent)
    await CampaignSender(hub, [RecordingSender()]).run(campaign["id"])
    signed_in = await client.post(
        "/login", json={"email": agent.email, "password": "correct horse battery"}
    )

    page = await client.get(f"/console/campaigns/{campaign['id']}")
    listing = await client.get("/console/campaigns")

    assert signed_in.status_code == 200
    assert page.status_code == 200
    assert '<progress id="bar" max="1" value="1"' in page.text
    assert "Spring news" in listing.text


async def test_a_supervisors_campaign_page_lists_the_recipients_whose_delivery_is_unknown(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    await add_customer(hub, "Anna", "anna@example.com")
    campaign, _sender = await sent_with_an_unknown_delivery(hub, client, agent, supervisor)
    url = f"/console/campaigns/{campaign['id']}"

    await client.post("/login", json={"email": agent.email, "password": "correct horse battery"})
    as_agent = await client.get(url)
    await client.post(
        "/login", json={"email": supervisor.email, "password": "correct horse battery"}
    )
    as_supervisor = await client.get(url)

    assert as_agent.status_code == as_supervisor.status_code == 200
    assert "anna@example.com" not in as_agent.text
    assert 'id="unknown"' in as_supervisor.text
    assert "anna@example.com" in as_supervisor.text
    assert "broke after the end of data" in as_supervisor.text


async def test_the_pacer_never_lets_two_messages_closer_than_the_rate_allows():
    pacer = Pacer(1000.0)
    slots = []
    for _ in range(5):
        await pacer.wait()
        slots.append(pacer.next_at)

    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert all(gap >= 1 / 1000.0 - 1e-9 for gap in gaps)
    assert Pacer(0).interval == 0.0


# Exactly once, step by step (the crash test kills a real process: test_campaign_delivery)


async def queued_campaign(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn, count: int
) -> tuple[dict[str, Any], CampaignSender]:
    """A started campaign whose rows are queued by a first sender, which holds it."""
    for n in range(count):
        await add_customer(hub, f"C{n}", f"c{n}@example.com")
    campaign = await approved(client, agent, supervisor)
    await start(client, campaign["id"], agent)
    first = CampaignSender(hub, [RecordingSender()])
    row = await first.hold.take(campaign["id"])
    assert await first._produce_page(row, compile_content(row))
    return campaign, first


async def test_after_a_crash_handed_rows_become_unknown_and_only_rows_never_handed_are_sent(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    campaign, dead = await queued_campaign(hub, client, agent, supervisor, 4)
    claimed = await dead._claim(campaign["id"], f"{dead.name}/0")
    async with hub.engine.connect() as connection, Handover(connection, f"{dead.name}/0") as hand:
        await hand.hand(claimed[0]["id"])
    async with hub.work() as work:  # the dead sender's hold runs out
        await work.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign["id"])
            .values(holder_until=utcnow() - timedelta(seconds=1))
        )
    survivor = RecordingSender()

    await CampaignSender(hub, [survivor]).run(campaign["id"])

    rows = {r.recipient: r for r in await outbox(hub, campaign["id"])}
    handed = claimed[0]["recipient"]
    assert rows[handed].status == "unknown"
    assert handed not in [o.recipient for o in survivor.sent]
    assert sorted(o.recipient for o in survivor.sent) == sorted(set(rows) - {handed})
    shown = (await client.get(f"/api/campaigns/{campaign['id']}", headers=agent.headers)).json()
    assert (shown["status"], shown["progress"]["unknown"], shown["progress"]["sent"]) == (
        "done",
        1,
        3,
    )


async def test_a_hand_off_is_committed_for_every_session_before_its_answer_is_awaited(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    campaign, first = await queued_campaign(hub, client, agent, supervisor, 2)
    claimed = await first._claim(campaign["id"], f"{first.name}/0")

    async def handed_seen_elsewhere() -> bool:
        return any(r.status == "handed" for r in await outbox(hub, campaign["id"]))

    async with hub.engine.connect() as connection, Handover(connection, f"{first.name}/0") as hand:
        # What the caller does next is write its end of data; the answer comes after.
        answer = await hand.hand_before_end(claimed[0]["id"])
        async with asyncio.timeout(5):
            while not await handed_seen_elsewhere():  # noqa: ASYNC110 - another session's view
                await asyncio.sleep(0.01)
        if answer is not None:  # PostgreSQL's COMMIT; SQLite's UPDATE was awaited whole
            await answer
        await hand.hand(claimed[1]["id"])  # the connection is free for the next one

    assert [r.status for r in await outbox(hub, campaign["id"])] == ["handed", "handed"]


async def test_a_row_cancelled_after_it_was_claimed_is_never_handed_over(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    campaign, first = await queued_campaign(hub, client, agent, supervisor, 3)
    claimed = await first._claim(campaign["id"], f"{first.name}/0")
    await client.post(f"/api/campaigns/{campaign['id']}/cancel", headers=agent.headers)
    recording = RecordingSender()

    async with hub.engine.connect() as connection, Handover(connection, f"{first.name}/0") as hand:
        await first._send_batch(claimed, recording, hand)

    assert recording.sent == []
    assert {r.status for r in await outbox(hub, campaign["id"])} == {"cancelled"}
