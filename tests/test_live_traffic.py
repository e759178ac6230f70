"""Live traffic first: a campaign waits while the same process serves a request."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from channels.chat import handlers
from channels.chat.handlers import Chat
from channels.chat.protocol import Ping
from hub import live_traffic
from hub.campaigns.sending import CampaignSender
from hub.context import Hub
from hub.delivery import RecordingSender
from hub.live_traffic import LiveTraffic, LiveTrafficMiddleware
from hub.metrics import Metrics
from tests.campaign_steps import add_customer, approved, start
from tests.conftest import SignedIn


@pytest.fixture
async def campaign_id(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
) -> int:
    """A started campaign to two customers."""
    await add_customer(hub, "Anna", "anna@example.com")
    await add_customer(hub, "Bert", "bert@example.com")
    campaign = await approved(client, agent, supervisor)
    assert (await start(client, campaign["id"], agent)).status_code == 202
    return campaign["id"]


async def test_a_campaign_sends_nothing_while_a_request_is_being_served(
    hub: Hub, campaign_id: int, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(live_traffic, "GAP_SECONDS", 30.0)
    sender = RecordingSender()

    hub.live.started()  # a request in flight, for as long as this test says
    sending = asyncio.create_task(CampaignSender(hub, [sender]).run(campaign_id))
    await asyncio.sleep(0.5)
    sent_meanwhile = len(sender.sent)
    hub.live.ended()
    await asyncio.wait_for(sending, 20)

    assert sent_meanwhile == 0
    assert sorted(o.recipient for o in sender.sent) == ["anna@example.com", "bert@example.com"]


async def test_under_unbroken_live_traffic_a_campaign_still_moves(
    hub: Hub, campaign_id: int, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(live_traffic, "GAP_SECONDS", 0.05)
    sender = RecordingSender()

    hub.live.started()  # and never ended
    await asyncio.wait_for(CampaignSender(hub, [sender]).run(campaign_id), 20)

    assert len(sender.sent) == 2


async def test_a_request_counts_as_in_flight_until_answered_and_its_status_is_counted():
    live, metrics = LiveTraffic(), Metrics()
    seen: list[int] = []

    async def answer(_request: Request) -> PlainTextResponse:
        seen.append(live.in_flight)
        return PlainTextResponse("ok", status_code=201)

    async def fail(_request: Request) -> PlainTextResponse:
        raise RuntimeError("a bug")

    app = Starlette(routes=[Route("/things/{n}", answer), Route("/broken", fail)])
    transport = httpx.ASGITransport(app=LiveTrafficMiddleware(app, live, metrics))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        assert (await client.get("/things/7")).status_code == 201
        with pytest.raises(RuntimeError):
            await client.get("/broken")

    def counted(route: str, status: str) -> float | None:
        labels = {"method": "GET", "route": route, "status": status}
        return metrics.registry.get_sample_value("omnihub_http_requests_total", labels)

    assert seen == [1]
    assert live.in_flight == 0
    assert counted("/things/{n}", "201") == 1.0
    assert counted("/broken", "500") == 1.0


async def test_a_gap_comes_at_once_when_nothing_is_in_flight_and_when_the_last_request_ends():
    live = LiveTraffic()
    await asyncio.wait_for(live.gap(), 0.01)

    live.started()
    live.started()
    waiting = asyncio.create_task(live.gap())
    live.ended()
    await asyncio.sleep(0.01)
    still_waiting = not waiting.done()
    live.ended()
    await asyncio.wait_for(waiting, 1)

    assert still_waiting


async def test_a_wait_that_found_no_gap_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(live_traffic, "GAP_SECONDS", 0.001)
    live = LiveTraffic()
    live.started()  # and never ended

    for _ in range(100):
        await live.gap()

    assert live._waiting == []


async def test_a_chat_frame_counts_as_live_traffic_while_it_is_handled(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    seen: list[int] = []

    async def on_ping(chat: Chat, _ping: Ping) -> None:
        seen.append(chat.hub.live.in_flight)

    monkeypatch.setitem(handlers.HANDLERS, Ping, on_ping)
    await handlers.handle(Chat(hub, registry=None, connection=None), Ping())  # type: ignore[arg-type]

    assert seen == [1]
    assert hub.live.in_flight == 0
