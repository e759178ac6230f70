"""The web form's attachments and size limits, its documentation, and a person filling it
in real Chromium, embedded in another page's iframe."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from channels.webform import spam
from hub.context import Hub
from hub.models import Attachment, Interaction
from tests.webform_steps import (
    FORM,
    SCREENSHOT,
    anna,
    confirmations,
    count,
    post_form,
    rejected_count,
    stored,
)

# -- attachments and size --------------------------------------------------------------


async def test_an_attachment_is_stored_with_its_name_type_and_size(
    client: httpx.AsyncClient, hub: Hub
):
    files = {"attachments": ("../../etc/rechnung.pdf", b"%PDF-1.4 tiny", "application/pdf")}

    await post_form(client, anna(hub), files=files)

    async with hub.sessions() as session:
        attachment = (await session.scalars(select(Attachment))).one()
    assert (attachment.filename, attachment.content_type, attachment.size) == (
        "rechnung.pdf",
        "application/pdf",
        13,
    )
    assert attachment.content == b"%PDF-1.4 tiny"


async def test_an_attachment_over_the_limit_is_recorded_with_its_size_but_no_content(
    client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(hub.settings, "mail_max_attachment_bytes", 1000)
    files = [
        ("attachments", ("foto.jpg", b"x" * 1500, "image/jpeg")),
        ("attachments", ("notiz.txt", b"klein", "text/plain")),
    ]

    answer = await post_form(client, anna(hub), files=files)

    assert answer.status_code == 303
    async with hub.sessions() as session:
        rows = (
            await session.execute(select(Attachment.filename, Attachment.size, Attachment.content))
        ).all()
    assert sorted(rows) == [("foto.jpg", 1500, None), ("notiz.txt", 5, b"klein")]


async def test_a_request_over_the_total_size_limit_is_refused_413(
    client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(hub.settings, "mail_max_attachment_bytes", 1000)
    files = {"attachments": ("gross.bin", b"x" * 400_000, "application/octet-stream")}

    answer = await post_form(client, anna(hub), files=files)

    assert answer.status_code == 413
    assert "too large" in answer.text
    assert await count(hub, Interaction) == 0
    assert await rejected_count(client, "too_large") == 1


async def test_a_thank_you_link_with_a_forged_reference_shows_no_reference(
    client: httpx.AsyncClient, hub: Hub
):
    answer = await client.get(f"{FORM}/thanks?t=eyJyZWYiOiJXRi0xLTEifQ.forged")

    assert answer.status_code == 404
    assert 'id="reference"' not in answer.text


async def test_the_post_is_documented_for_json_form_and_multipart_bodies(
    client: httpx.AsyncClient, hub: Hub
):
    document = (await client.get("/openapi.json")).json()

    body = document["paths"][FORM]["post"]["requestBody"]["content"]
    assert sorted(body) == [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ]
    assert body["application/json"]["schema"]["properties"]["topic"]["enum"] == [
        "inquiry",
        "complaint",
        "order",
        "other",
    ]


# -- in a real browser -----------------------------------------------------------------

EMBEDDING_PAGE = """<!doctype html>
<html lang="de"><head><meta charset="utf-8"><title>Shop</title></head>
<body style="font-family: sans-serif; background: #f3f4f6">
  <h1>Beispiel-Shop</h1>
  <iframe src="{url}/channels/webform?lang=de" title="Kontaktformular"
          style="width: 640px; height: 1150px; border: 1px solid #ccc; background: #fff"></iframe>
</body></html>"""


async def test_a_person_fills_the_embedded_form_in_a_browser_and_sees_the_reference(
    hub: Hub, live_url: str, page: Any, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(spam, "MIN_FILL_SECONDS", 0.2)
    await page.set_content(EMBEDDING_PAGE.format(url=live_url))
    form = page.frame_locator("iframe[title=Kontaktformular]")

    await form.get_by_label("Ihr Name").fill("Anna Berger")
    await form.get_by_label("E-Mail-Adresse").fill("anna@example.com")
    await form.get_by_label("Worum geht es?").select_option("complaint")
    await form.get_by_label("Betreff").fill("Kaputt angekommen")
    await form.get_by_label("Ihre Nachricht").fill("Die Vase war zerbrochen.")
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    await asyncio.sleep(0.3)  # past the minimum fill time
    await form.get_by_role("button", name="Nachricht senden").click()

    reference = form.locator("#reference")
    await reference.wait_for()
    [interaction] = await stored(hub)
    assert await reference.inner_text() == f"WF-{interaction.conversation_id}-{interaction.id}"
    assert interaction.text == "Die Vase war zerbrochen."
    assert interaction.meta["complaint_id"] is not None
    [row] = await confirmations(hub)
    assert (row.recipient, row.status) == ("anna@example.com", "queued")


async def test_a_bot_filling_the_hidden_field_in_a_browser_is_shown_why_it_was_refused(
    hub: Hub, live_url: str, page: Any, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(spam, "MIN_FILL_SECONDS", 0.2)
    await page.goto(f"{live_url}/channels/webform?lang=en")
    await page.get_by_label("Your name").fill("Bot")
    await page.get_by_label("E-mail address").fill("bot@example.com")
    await page.get_by_label("Your message").fill("Cheap pills")
    await page.locator("[name=website]").evaluate("field => field.value = 'http://pills.example'")
    await asyncio.sleep(0.3)
    await page.get_by_role("button", name="Send message").click()

    await page.get_by_role("alert").wait_for()
    assert "automated spam" in await page.get_by_role("alert").inner_text()
    assert await count(hub, Interaction) == 0
