"""Campaigns sending: one message per allowed recipient, segments, the job, exactly once."""

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
    Campaign,
    Complaint,
    Interaction,
    OutboxMessage,
    utcnow,
)
from tests.campaign_steps import add_customer, approved, outbox, start
from tests.conftest import SignedIn

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
