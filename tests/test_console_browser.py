"""The live console in real Chromium: contacts arrive, agents answer, calls pop, mail stays inert.

The hub is served on loopback (tests/peers/browser.py), a shop on another port
embeds the chat widget, and a third loopback server plays a tracker that
counts who loads its "remote image". Webhooks come as real HTTP requests,
signed as Twilio signs them. Every test saves screenshots of the screens it
passes through under `artifacts/screenshots/` (kept by CI, ignored by git).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from playwright.async_api import Page, expect
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from channels.chat.sender import ChatSender
from hub.app import create_app
from hub.context import Hub
from hub.dispatcher import Dispatcher
from hub.intake import accept_inbound
from hub.models import Interaction
from hub.values import Inbound
from tests.conftest import MakeAgent, SignedIn
from tests.console_steps import hostile_mail, receive_mail
from tests.peers.browser import serving
from tests.test_chat_widget import SHOP_PAGE, open_shop, type_and_send, until_bubbles
from tests.test_webform import form_token

PASSWORD = "correct horse battery"
TWILIO_TOKEN = "twilio-test-auth-token-0123456789"
PUBLIC_URL = "https://hub.example.com"
SCREEN = {"width": 1366, "height": 768}
ARTIFACTS = Path(os.environ.get("OMNIHUB_ARTIFACTS", "artifacts")) / "screenshots"
WAIT_MS = 10_000


@dataclass
class Live:
    hub: Hub
    app: FastAPI
    url: str
    shop: str
    tracker: str
    tracked: list[str] = field(default_factory=list)

    async def dispatch(self) -> int:
        """One outbox pass through the chat sender the app's socket route shares."""
        return await Dispatcher(self.hub, {"chat": ChatSender(self.app.state.chat)}).dispatch_once()


@pytest.fixture
async def live(hub: Hub) -> AsyncIterator[Live]:
    hub.settings = hub.settings.model_copy(
        update={"twilio_auth_token": TWILIO_TOKEN, "public_url": PUBLIC_URL}
    )
    app = create_app(hub.settings, hub)
    tracked: list[str] = []
    tracker = FastAPI()

    @tracker.get("/pixel.png")
    async def pixel() -> Response:
        tracked.append("pixel")
        return Response(b"GIF89a", media_type="image/gif")

    async with serving(hub, app) as url, serving(hub, tracker) as tracker_url:
        shop = FastAPI()
        shop.get("/", response_class=HTMLResponse)(lambda: SHOP_PAGE.format(url=url))
        async with serving(hub, shop) as shop_url:
            yield Live(hub, app, url, shop_url, tracker_url, tracked)


async def shot(page: Page, request: pytest.FixtureRequest, name: str) -> None:
    engine = (
        request.node.callspec.params.get("database_url", "")
        if hasattr(request.node, "callspec")
        else ""
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}-{engine}.png"))


async def sign_in(page: Page, url: str, agent: SignedIn) -> None:
    await page.set_viewport_size(SCREEN)
    await page.goto(url + "/")
    await page.get_by_label("E-mail").fill(agent.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(url + "/console")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")


async def go_online(page: Page) -> None:
    async with page.expect_response(re.compile(r"/api/agents/me/presence$")) as answer:
        await page.locator("#presence").select_option("online")
    assert (await answer.value).ok


def row(page: Page, text: str) -> Any:
    return page.locator("#lists tr.row", has_text=text)


async def post_webform(url: str, hub: Hub, name: str, message: str) -> None:
    fields = {
        "name": name,
        "email": "anna@example.com",
        "phone": "",
        "subject": "Lieferung",
        "message": message,
        "topic": "order",
        "form_token": form_token(hub),
    }
    async with httpx.AsyncClient(base_url=url) as web:
        answer = await web.post("/channels/webform", json=fields)
    assert answer.status_code == 201, answer.text


async def incoming_call(url: str, call_sid: str, caller: str) -> None:
    params = {
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "CallSid": call_sid,
        "From": caller,
        "To": "+4930123456789",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    path = "/channels/voice/twilio"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path, params)
    async with httpx.AsyncClient(base_url=url) as web:
        answer = await web.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.text


async def test_an_agent_signs_in_and_a_web_form_contact_and_a_chat_arrive_live_without_reload(
    live: Live, page: Page, browser: Any, agent: SignedIn, request: pytest.FixtureRequest
):
    await sign_in(page, live.url, agent)
    await go_online(page)
    loads: list[str] = []
    page.on("load", lambda _page: loads.append("load"))
    await shot(page, request, "console-empty")

    await post_webform(live.url, live.hub, "Anna Berger", "Wo bleibt meine Bestellung 4711?")
    await expect(row(page, "Anna Berger")).to_be_visible()
    customer = await browser.new_context()
    shop = await customer.new_page()
    try:
        await open_shop(shop, live.shop)
        await type_and_send(shop, "Hallo, ist jemand da?")
        chat_row = page.locator("#list-queue tr.row", has=page.locator("td.channel[title=Chat]"))
        await expect(chat_row).to_have_count(1)
    finally:
        await customer.close()

    assert loads == []  # no reload: both rows came over the socket
    await expect(row(page, "Anna Berger").locator(".sla, .since").first).to_be_visible()
    await shot(page, request, "console-live-list")


async def test_the_agent_answers_a_chat_and_the_answer_shows_in_the_history_and_the_widget(
    live: Live, page: Page, browser: Any, agent: SignedIn, request: pytest.FixtureRequest
):
    await sign_in(page, live.url, agent)
    await go_online(page)
    customer = await browser.new_context()
    shop = await customer.new_page()
    try:
        await open_shop(shop, live.shop)
        await type_and_send(shop, "Wo ist mein Paket?")
        chat_row = page.locator("#lists tr.row", has=page.locator("td.channel[title=Chat]"))
        await chat_row.click()
        await expect(page.locator("#thread")).to_contain_text("Wo ist mein Paket?")
        await expect(page.locator("#gate")).to_contain_text("Will be sent to")

        await page.get_by_placeholder("Your reply").fill("Es kommt morgen.")
        await page.get_by_role("button", name="Send", exact=True).click()
        await expect(page.locator("#composer-status")).to_have_text("Reply queued.")
        outbound = page.locator("#thread li.entry-outbound")
        await expect(outbound).to_contain_text("Es kommt morgen.")
        await expect(page.locator("#timeline")).to_contain_text("Es kommt morgen.")
        assert await live.dispatch() == 1
        await until_bubbles(
            shop,
            [("me", "Wo ist mein Paket?", "sent"), ("agent", "Es kommt morgen.", None)],
        )
        await shot(page, request, "console-conversation-chat")
        await shot(shop, request, "chat-widget-answered")
    finally:
        await customer.close()


async def test_an_incoming_call_pops_the_callers_card_with_open_complaints_on_their_agent(
    live: Live, page: Page, agent: SignedIn, request: pytest.FixtureRequest
):
    async with httpx.AsyncClient(base_url=live.url, headers=agent.headers) as api:
        created = await api.post(
            "/api/customers",
            json={
                "name": "Clara Kaufmann",
                "tier": "A",
                "key_account_agent_id": agent.id,
                "phones": ["+49 151 2345678"],
            },
        )
        customer_id = created.json()["id"]
        await api.post(
            "/api/complaints",
            json={"customer_id": customer_id, "subject": "Falsche Rechnung", "severity": "high"},
        )
    await sign_in(page, live.url, agent)
    await go_online(page)

    await incoming_call(live.url, "CA-console-1", "+49 151 2345678")

    pop = page.locator("#screen-pop")
    await expect(pop).to_be_visible()
    await expect(pop).to_contain_text("Incoming call")
    await expect(pop).to_contain_text("Clara Kaufmann")
    await expect(pop.locator(".complaints.has-open")).to_contain_text("Falsche Rechnung")
    await shot(page, request, "console-screen-pop")
    await pop.get_by_role("button", name="Open conversation").click()
    await expect(page.locator("#complaints-box")).to_contain_text("Falsche Rechnung")


async def test_an_email_with_script_onerror_and_a_remote_image_renders_inert(
    live: Live, page: Page, agent: SignedIn, request: pytest.FixtureRequest
):
    mail = hostile_mail().replace(b"http://tracker.example", live.tracker.encode())
    interaction_id = await receive_mail(live.hub, mail)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await sign_in(page, live.url, agent)

    await row(page, "Mallory").click()
    body = page.frame_locator("iframe.mail-frame")
    await expect(body.locator("body")).to_contain_text("Hallo!")
    await page.wait_for_load_state("networkidle")
    title = await page.title()
    before = list(live.tracked)
    await shot(page, request, "console-email-inert")

    await page.get_by_role("button", name="Show remote images").click()
    async with asyncio.timeout(WAIT_MS / 1000):
        while not live.tracked:  # noqa: ASYNC110 (a server in this loop)
            await asyncio.sleep(0.05)

    assert before == [] and dialogs == []
    assert title != "pwned" and await page.title() != "pwned"
    async with live.hub.sessions() as session:
        stored = await session.get(Interaction, interaction_id)
    assert "<script" not in stored.html and "onerror" not in stored.html


async def test_a_second_agent_sees_who_has_the_conversation_open_and_who_types(
    live: Live, page: Page, browser: Any, make_agent: MakeAgent, request: pytest.FixtureRequest
):
    anna = await make_agent("agent", name="Anna Agent")
    bert = await make_agent("agent", name="Bert Agent")
    await post_webform(live.url, live.hub, "Clara Kundin", "Meine Bestellung fehlt.")
    await sign_in(page, live.url, anna)
    other = await browser.new_context()
    second = await other.new_page()
    try:
        await sign_in(second, live.url, bert)
        await row(page, "Clara Kundin").click()
        await row(second, "Clara Kundin").click()

        await expect(second.locator("#collision")).to_contain_text("also viewing: Anna Agent")
        await expect(page.locator("#collision")).to_contain_text("also viewing: Bert Agent")
        await page.get_by_placeholder("Your reply").press_sequentially("Hallo Clara")
        await expect(second.locator("#collision")).to_contain_text("Anna Agent is typing")
        await expect(page.locator("#composer-status")).to_have_text(
            "You are answering this conversation."
        )
        await expect(second.locator("#assignee-name")).to_have_text("Anna Agent")
        # Anna's list now has it among her own, marked with who else has it open.
        await expect(row(page, "Clara Kundin")).to_have_attribute("data-section", "mine")
        await expect(row(page, "Clara Kundin").locator(".viewers")).to_contain_text("Bert")
        await second.get_by_placeholder("Your reply").fill("Ich auch")
        await expect(second.locator("#collision")).to_contain_text("being answered by Anna Agent")
        await shot(second, request, "console-collision")
    finally:
        await other.close()


async def test_a_reply_drafted_before_a_new_message_shows_what_changed_before_it_goes(
    live: Live, page: Page, agent: SignedIn, request: pytest.FixtureRequest
):
    first = await accept_inbound(
        live.hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender="dora@example.com",
            sender_name="Dora Neu",
            external_id="<d-1@example.com>",
            subject="Frage",
            text="Haben Sie Größe 38?",
        ),
    )
    await sign_in(page, live.url, agent)
    await row(page, "Dora Neu").click()
    await page.get_by_placeholder("Your reply").fill("Ja, Größe 38 ist da.")

    await accept_inbound(
        live.hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender="dora@example.com",
            external_id="<d-2@example.com>",
            references=("<d-1@example.com>",),
            subject="Re: Frage",
            text="Ach, doch lieber 40.",
        ),
    )
    await page.get_by_role("button", name="Send", exact=True).click()

    stale = page.locator("#stale")
    await expect(stale).to_be_visible()
    await expect(stale).to_contain_text("Ach, doch lieber 40.")
    await shot(page, request, "console-stale-draft")
    assert await replies(live.hub, first.conversation_id) == 0
    await stale.get_by_role("button", name="Send anyway").click()
    await expect(page.locator("#composer-status")).to_have_text("Reply queued.")
    assert await replies(live.hub, first.conversation_id) == 1


async def replies(hub: Hub, conversation_id: int) -> int:
    async with hub.sessions() as session:
        return await session.scalar(
            select(func.count()).where(
                Interaction.conversation_id == conversation_id,
                Interaction.direction == "outbound",
            )
        )


async def test_the_console_speaks_german_after_the_agent_switches_language(
    live: Live, page: Page, agent: SignedIn, request: pytest.FixtureRequest
):
    await sign_in(page, live.url, agent)

    await page.locator("#language").select_option("de")

    await expect(page.get_by_role("heading", name="Offene Gespräche")).to_be_visible()
    await expect(page.get_by_role("button", name="Abmelden")).to_be_visible()
    await shot(page, request, "console-german")
    await page.get_by_role("button", name="Abmelden").click()
    await page.wait_for_url(live.url + "/")


async def test_the_composer_says_before_sending_that_a_stopped_number_would_be_blocked(
    live: Live, page: Page, agent: SignedIn, supervisor: SignedIn, request: pytest.FixtureRequest
):
    await accept_inbound(
        live.hub,
        Inbound(
            channel="sms",
            sender_kind="phone",
            sender="+491701234567",
            sender_name="Emil Stopp",
            external_id="SM-console-1",
            text="Rufen Sie mich zurück?",
        ),
    )
    async with httpx.AsyncClient(base_url=live.url, headers=supervisor.headers) as api:
        blocked = await api.post(
            "/api/blocks", json={"kind": "phone", "value": "+491701234567", "reason": "sms_stop"}
        )
        assert blocked.status_code == 201, blocked.text
    await sign_in(page, live.url, agent)
    await row(page, "Emil Stopp").click()

    await expect(page.locator("#gate")).to_have_text(
        "This message would be blocked: STOP by SMS (block:sms_stop)"
    )
    await page.get_by_placeholder("Your reply").fill("x" * 200)
    await expect(page.locator("#segments")).to_have_text("SMS segments: 2 (GSM-7, 200)")
    await page.get_by_placeholder("Your reply").fill("Grüße 😀")
    await expect(page.locator("#segments")).to_have_text("SMS segments: 1 (UCS-2, 7)")
    await shot(page, request, "console-gate-blocked")


async def test_the_keyboard_alone_opens_a_conversation_and_sends_a_reply(
    live: Live, page: Page, agent: SignedIn
):
    await post_webform(live.url, live.hub, "Fritz Tastatur", "Geht das auch ohne Maus?")
    await sign_in(page, live.url, agent)
    await expect(row(page, "Fritz Tastatur")).to_be_visible()

    await page.keyboard.press("j")
    await page.keyboard.press("Enter")
    await expect(page.locator("#thread")).to_contain_text("Geht das auch ohne Maus?")
    await page.keyboard.press("r")
    await page.keyboard.type("Ja, mit j, Enter und r.")
    await page.keyboard.press("Control+Enter")

    await expect(page.locator("#composer-status")).to_have_text("Reply queued.")
    await expect(page.locator("#thread li.entry-outbound")).to_contain_text("Ja, mit j")


async def test_from_the_conversation_an_agent_notes_handles_a_complaint_transfers_and_closes(
    live: Live, page: Page, agent: SignedIn, make_agent: MakeAgent, request: pytest.FixtureRequest
):
    colleague = await make_agent("supervisor", name="Greta Kollegin")
    await post_webform(live.url, live.hub, "Hanna Haken", "Der Reißverschluss ist kaputt.")
    await sign_in(page, live.url, agent)
    await row(page, "Hanna Haken").click()

    await page.get_by_placeholder("Your reply").fill("Kundin ruft morgen wieder an.")
    await page.get_by_role("button", name="Add note").click()
    await expect(page.locator("#thread li.kind-note")).to_contain_text("Kundin ruft morgen")
    await page.get_by_placeholder("What is the complaint?").fill("Reißverschluss defekt")
    await page.get_by_role("button", name="Open complaint").click()
    complaints = page.locator("#complaints-box")
    await expect(complaints.locator(".complaints.has-open")).to_contain_text("Reißverschluss")
    await expect(row(page, "Hanna Haken").locator(".complaint-badge")).to_be_visible()
    await shot(page, request, "console-complaint-open")
    await complaints.get_by_role("button", name="Resolve").click()
    await expect(complaints).to_contain_text("No open complaints.")

    await page.locator("#transfer-target").select_option(label="pool")
    await page.get_by_role("button", name="Assign", exact=True).click()
    await page.get_by_role("button", name="Take it").click()
    await expect(page.locator("#assignee-name")).to_have_text("Agent 1")
    await expect(row(page, "Hanna Haken")).to_have_attribute("data-section", "mine")
    await page.get_by_role("button", name="Close", exact=True).click()
    await expect(page.locator("#conversation-title")).to_contain_text("closed")
    await expect(row(page, "Hanna Haken")).to_have_count(0)
    await page.get_by_role("button", name="Reopen").click()
    await expect(row(page, "Hanna Haken")).to_be_visible()
    assert colleague.id != agent.id


async def test_after_a_lost_line_the_console_resumes_and_shows_what_came_meanwhile(
    live: Live, page: Page, agent: SignedIn, request: pytest.FixtureRequest
):
    await sign_in(page, live.url, agent)
    loads: list[str] = []
    page.on("load", lambda _page: loads.append("load"))

    await page.context.set_offline(True)  # reconnecting fails until the line is back
    assert await live.app.state.agent_sockets.cut(agent.id) == 1
    await expect(page.locator("#connection")).to_have_attribute("data-state", "lost")
    await post_webform(live.url, live.hub, "Ida Zwischenzeit", "Kam das an?")
    await shot(page, request, "console-reconnecting")
    await page.context.set_offline(False)

    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(row(page, "Ida Zwischenzeit")).to_be_visible()
    assert loads == []  # replayed over the socket, not reloaded
