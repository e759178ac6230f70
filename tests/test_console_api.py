"""The console's server side without a browser: fragments, CSRF, visibility, safety, drafts.

The browser tests (tests/test_console_browser.py) drive the same endpoints
through real Chromium; these pin down the rules one request at a time.
"""

from __future__ import annotations

import re
from datetime import date

import httpx
import pytest
from sqlalchemy import select

from agent_ui.console import birthday_in
from agent_ui.i18n import LABELS
from hub.context import Hub
from hub.intake import accept_inbound
from hub.models import Attachment, Interaction
from hub.values import Inbound
from tests.conftest import MakeAgent, SignedIn
from tests.console_steps import (
    an_inquiry,
    hostile_mail,
    receive_mail,
    set_teams,
    sign_in,
)


def test_every_label_exists_in_german_and_english():
    assert set(LABELS["de"]) == set(LABELS["en"])
    assert all(LABELS["de"][key].strip() for key in LABELS["de"])


@pytest.mark.parametrize(
    ("birthday", "expected"),
    [("1980-11-22", 0), ("1980-11-25", 3), ("1980-12-10", None), ("1980-01-02", None)],
)
def test_a_birthday_shows_only_within_a_week(birthday, expected):
    assert birthday_in(date.fromisoformat(birthday), date(2026, 11, 22)) == expected


def test_a_birthday_at_new_year_counts_over_the_turn_of_the_year():
    assert birthday_in(date(1990, 1, 2), date(2026, 12, 30)) == 3


async def test_the_console_lists_a_new_contact_with_customer_tier_and_waiting_time(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await sign_in(client, agent)
    _, conversation_id = await an_inquiry(hub)

    page = await client.get("/console")
    row = await client.get(f"/console/rows/{conversation_id}")

    assert f'id="row-{conversation_id}"' in page.text and "Anna Schmidt" in page.text
    assert row.status_code == 200 and 'data-section="queue"' in row.text
    assert 'class="since"' in row.text  # the customer is waiting for an answer


async def test_german_agents_see_german_labels(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    csrf = await sign_in(client, agent)

    changed = await client.post("/console/language", data={"language": "de", "csrf_token": csrf})
    page = await client.get("/console")

    assert changed.status_code == 303
    assert "Offene Gespräche" in page.text and "Meine Warteschlangen" in page.text
    assert "Sign out" not in page.text and "Abmelden" in page.text


async def test_a_form_with_a_wrong_csrf_token_is_refused(
    client: httpx.AsyncClient, agent: SignedIn
):
    await sign_in(client, agent)

    forged = await client.post("/console/language", data={"language": "de", "csrf_token": "x"})

    assert forged.status_code == 403


async def test_a_cross_site_browser_request_with_the_cookie_is_refused_without_the_token(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    csrf = await sign_in(client, agent)
    _, conversation_id = await an_inquiry(hub)
    url = f"/api/conversations/{conversation_id}/notes"

    forged = await client.post(url, json={"text": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
    wrong_token = await client.post(url, json={"text": "x"}, headers={"X-CSRF-Token": "nope"})
    with_token = await client.post(
        url, json={"text": "ok"}, headers={"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}
    )
    logout = await client.post("/logout", headers={"Sec-Fetch-Site": "cross-site"})

    assert forged.status_code == 403 and wrong_token.status_code == 403
    assert with_token.status_code == 201
    assert logout.status_code == 403
    assert (await client.get("/api/agents/me")).status_code == 200  # still signed in


async def test_an_agent_sees_only_their_teams_queues_and_their_own_conversations(
    hub: Hub, client: httpx.AsyncClient, make_agent: MakeAgent
):
    restricted = await make_agent("agent", name="Teamed")
    await set_teams(hub, restricted, ["key_accounts"])
    await sign_in(client, restricted)
    _, pooled = await an_inquiry(hub)  # tier C: the pool queue

    row = await client.get(f"/console/rows/{pooled}")
    pane = await client.get(f"/console/conversations/{pooled}")
    page = await client.get("/console")

    assert row.status_code == 204
    assert pane.status_code == 404
    assert f"row-{pooled}" not in page.text


async def test_a_supervisor_sees_every_queue(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    await set_teams(hub, supervisor, ["key_accounts"])
    await sign_in(client, supervisor)
    _, pooled = await an_inquiry(hub)

    assert (await client.get(f"/console/rows/{pooled}")).status_code == 200


async def test_the_conversation_pane_shows_the_thread_and_the_card_with_open_complaints_first(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await sign_in(client, agent)
    customer_id, conversation_id = await an_inquiry(hub)
    await client.post(
        "/api/complaints",
        headers=agent.headers,
        json={"customer_id": customer_id, "subject": "Paket beschädigt"},
    )

    pane = (await client.get(f"/console/conversations/{conversation_id}")).text

    assert "Wann kommt meine Bestellung?" in pane
    complaints, name, history = (
        pane.index("Paket beschädigt"),
        pane.index("customer-name"),
        pane.index('id="timeline"'),
    )
    assert complaints < name < history
    assert 'class="complaints has-open"' in pane


async def test_the_timeline_pages_by_keyset_until_the_start(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    hub.settings = hub.settings.model_copy(update={"history_page_size": 2})
    await sign_in(client, agent)
    customer_id, _ = await an_inquiry(hub)
    for number in range(2, 6):
        await an_inquiry(hub, external_id=f"<q-{number}@example.com>")

    seen, url = [], f"/console/customers/{customer_id}/history"
    while url:
        page = (await client.get(url)).text
        seen += re.findall(r'data-history-id="(\d+)"', page)
        more = re.search(r'hx-get="([^"]+)"', page)
        url = more.group(1).replace("&amp;", "&") if more else None

    assert len(seen) == len(set(seen)) == 5
    assert "Start of the history." in page


async def test_a_reply_drafted_before_a_new_message_is_refused_with_what_changed(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    _, conversation_id = await an_inquiry(hub)
    async with hub.sessions() as session:
        seen = await session.scalar(
            select(Interaction.id).where(Interaction.conversation_id == conversation_id)
        )
    await an_inquiry(hub, external_id="<q-2@example.com>", references=("<q-1@example.com>",))
    url = f"/api/conversations/{conversation_id}/reply"

    stale = await client.post(
        url, headers=agent.headers, json={"text": "Morgen.", "seen_interaction_id": seen}
    )
    newest = stale.json()["changes"][-1]["id"]
    fresh = await client.post(
        url, headers=agent.headers, json={"text": "Morgen.", "seen_interaction_id": newest}
    )

    assert stale.status_code == 409
    assert [c["text"] for c in stale.json()["changes"]] == ["Wann kommt meine Bestellung?"]
    assert fresh.status_code == 202


async def test_a_second_click_on_send_is_not_taken_for_a_change(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    _, conversation_id = await an_inquiry(hub)
    body = {"text": "Morgen.", "client_id": "draft-1", "seen_interaction_id": 10**6}
    url = f"/api/conversations/{conversation_id}/reply"

    first = await client.post(url, headers=agent.headers, json=body)
    second = await client.post(url, headers=agent.headers, json=body)

    assert first.status_code == second.status_code == 202
    assert first.json()["outbox_id"] == second.json()["outbox_id"]


async def test_the_gate_pre_check_says_why_a_reply_would_be_blocked(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    _, conversation_id = await an_inquiry(hub)
    url = f"/api/conversations/{conversation_id}/reply/check"

    before = await client.post(url, headers=agent.headers, json={})
    await client.post(
        "/api/blocks",
        headers=supervisor.headers,
        json={"kind": "email", "value": "anna@example.com", "reason": "legal"},
    )
    after = await client.post(url, headers=agent.headers, json={})

    assert before.json() == {
        "channel": "email",
        "recipient": "anna@example.com",
        "allowed": True,
        "reasons": [],
    }
    assert after.json()["allowed"] is False and after.json()["reasons"] == ["block:legal"]


async def test_starting_a_reply_claims_an_unassigned_conversation_once(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, make_agent: MakeAgent
):
    other = await make_agent("agent", name="Bea")
    _, conversation_id = await an_inquiry(hub)
    url = f"/console/conversations/{conversation_id}/claim"

    mine = await client.post(url, headers=agent.headers)
    theirs = await client.post(url, headers=other.headers)

    assert mine.json()["claimed"] is True
    assert theirs.json() == {
        "conversation_id": conversation_id,
        "claimed": False,
        "assignee_id": agent.id,
        "assignee_name": mine.json()["assignee_name"],
    }


async def test_canned_responses_are_filled_in_the_customers_language(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id, conversation_id = await an_inquiry(hub)
    await client.patch(
        f"/api/customers/{customer_id}", headers=agent.headers, json={"language": "de"}
    )

    canned = (
        await client.get(f"/console/conversations/{conversation_id}/canned", headers=agent.headers)
    ).json()

    greeting = next(c for c in canned if c["name"] == "greeting")
    assert greeting["title"] == "Begrüßung"
    assert greeting["text"].startswith("Guten Tag Anna Schmidt,")


async def test_stored_mail_html_is_served_cleaned_for_a_sandbox_without_network_images(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    interaction_id = await receive_mail(hub, hostile_mail())
    url = f"/console/interactions/{interaction_id}/body"

    body = await client.get(url, headers=agent.headers)
    with_images = await client.get(url, params={"images": "1"}, headers=agent.headers)

    assert body.status_code == 200 and "Hallo!" in body.text
    assert "<script" not in body.text and "onerror" not in body.text
    assert "javascript:" not in body.text
    policy = body.headers["content-security-policy"]
    assert "img-src data:;" in policy and "sandbox" in policy and "script-src" not in policy
    assert "img-src data: https: http:;" in with_images.headers["content-security-policy"]
    assert body.headers["x-content-type-options"] == "nosniff"


async def test_the_thread_shows_mail_html_only_in_a_sandboxed_frame_without_same_origin(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    interaction_id = await receive_mail(hub, hostile_mail())
    async with hub.sessions() as session:
        conversation_id = (await session.get(Interaction, interaction_id)).conversation_id
    await sign_in(client, agent)

    pane = (await client.get(f"/console/conversations/{conversation_id}")).text

    frame = re.search(r"<iframe[^>]*>", pane).group(0)
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame
    assert "allow-same-origin" not in pane and "allow-scripts" not in pane
    assert "onerror" not in pane and "<script>parent" not in pane


async def test_an_attachment_is_always_a_download_never_rendered(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    interaction_id = await receive_mail(hub, hostile_mail())
    async with hub.sessions() as session:
        attachment_id = await session.scalar(
            select(Attachment.id).where(Attachment.interaction_id == interaction_id)
        )

    answer = await client.get(f"/console/attachments/{attachment_id}", headers=agent.headers)

    assert answer.status_code == 200
    assert answer.headers["content-disposition"].startswith('attachment; filename="bild.svg"')
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.content.startswith(b"<svg")


async def test_customer_text_is_escaped_in_every_fragment(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await sign_in(client, agent)
    result = await accept_inbound(
        hub,
        Inbound(
            channel="webform",
            sender_kind="email",
            sender="eve@example.com",
            sender_name="<img src=x onerror=alert(1)>",
            external_id="form-1",
            subject="<b>bold</b>",
            text="<script>alert(1)</script>",
        ),
    )

    row = (await client.get(f"/console/rows/{result.conversation_id}")).text
    pane = (await client.get(f"/console/conversations/{result.conversation_id}")).text

    for html in (row, pane):
        assert "<img src=x" not in html and "<script>alert" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pane
