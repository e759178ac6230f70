"""The web form: submissions land on the customer's history once, confirmed; spam does not;
mistakes are shown beside their field, text stays text, in German or English."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from channels.webform import spam
from channels.webform.texts import TEXTS, choose_language
from hub.blocks import do_add_block
from hub.context import Hub
from hub.models import Complaint, Interaction
from tests.webform_steps import (
    FORM,
    anna,
    confirmations,
    count,
    form_token,
    input_tag,
    post_form,
    reference_on,
    rejected_count,
    stored,
)

# -- a person's submission -------------------------------------------------------------


async def test_a_form_post_is_answered_303_to_a_thank_you_page_showing_its_reference(
    client: httpx.AsyncClient, hub: Hub
):
    answer = await post_form(client, anna(hub))

    assert answer.status_code == 303
    [interaction] = await stored(hub)
    reference = await reference_on(client, answer)
    assert reference == f"WF-{interaction.conversation_id}-{interaction.id}"


async def test_a_form_post_is_on_the_customers_history_with_name_topic_and_address(
    client: httpx.AsyncClient, hub: Hub, agent: Any
):
    await post_form(client, anna(hub, phone="030 1234567"), headers={"User-Agent": "Tester/1"})

    card = (
        await client.get("/api/customers/lookup?email=anna@example.com", headers=agent.headers)
    ).json()
    entry = next(e for e in card["history"] if e["channel"] == "webform")
    assert (entry["sender"], entry["subject"], entry["text"]) == (
        "anna@example.com",
        "Lieferung",
        "Wo bleibt meine Bestellung 4711?",
    )
    [interaction] = await stored(hub)
    assert interaction.meta["name"] == "Anna Berger"
    assert interaction.meta["phone"] == "+49301234567"
    assert interaction.meta["topic"] == "order"
    assert interaction.meta["ip"] == "127.0.0.1"
    assert interaction.meta["user_agent"] == "Tester/1"


async def test_the_submitter_gets_a_confirmation_email_with_the_reference_queued_as_service(
    client: httpx.AsyncClient, hub: Hub
):
    answer = await client.post(f"{FORM}?lang=de", data=anna(hub))

    reference = await reference_on(client, answer)
    [row] = await confirmations(hub)
    assert (row.channel, row.recipient, row.purpose, row.status) == (
        "email",
        "anna@example.com",
        "service",
        "queued",
    )
    assert reference in row.payload["subject"] and reference in row.payload["text"]
    assert row.payload["subject"].startswith("Wir haben Ihre Nachricht erhalten")
    assert f"[#{row.conversation_id}]" in row.payload["subject"]
    assert "Wo bleibt" not in row.payload["text"]  # nothing the visitor typed is mailed out


async def test_submissions_stored_together_each_get_their_own_confirmation_or_none(
    client: httpx.AsyncClient, hub: Hub
):
    async with hub.work() as work:
        await do_add_block(work, None, "email", "bounced@example.com", "hard_bounce", "DE")
    senders = ["anna@example.com", "bounced@example.com", "ben@example.com", ""]
    forms = [anna(hub, email=email, phone="030 1234567") for email in senders]

    answers = await asyncio.gather(*(post_form(client, form) for form in forms))

    thanks = [await client.get(answer.headers["location"]) for answer in answers]
    says_mailed = [TEXTS["en"]["thanks_mailed"] in page.text for page in thanks]
    assert says_mailed == [True, False, True, False]
    rows = {row.recipient: row for row in await confirmations(hub)}
    assert sorted(rows) == ["anna@example.com", "ben@example.com", "bounced@example.com"]
    assert rows["bounced@example.com"].status == "blocked"
    for interaction in await stored(hub):
        email = interaction.meta.get("email")
        if email:
            assert rows[email].interaction_id == interaction.id


async def test_a_json_post_is_answered_201_with_the_reference(client: httpx.AsyncClient, hub: Hub):
    answer = await client.post(
        FORM, json={"name": "Anna", "email": "anna@example.com", "message": "Hallo"}
    )

    assert answer.status_code == 201
    [interaction] = await stored(hub)
    assert answer.json() == {"reference": f"WF-{interaction.conversation_id}-{interaction.id}"}
    assert len(await confirmations(hub)) == 1


async def test_a_json_repeat_with_the_same_submission_id_answers_200_with_the_same_reference(
    client: httpx.AsyncClient, hub: Hub
):
    body = {"name": "Anna", "email": "anna@example.com", "message": "Hallo", "submission_id": "a-1"}

    first = await client.post(FORM, json=body)
    again = await client.post(FORM, json=body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(await stored(hub)) == 1


async def test_a_complaint_topic_opens_a_complaint(client: httpx.AsyncClient, hub: Hub):
    await post_form(client, anna(hub, topic="complaint", subject="Kaputt angekommen"))

    async with hub.sessions() as session:
        complaint = (await session.scalars(select(Complaint))).one()
    [interaction] = await stored(hub)
    assert complaint.subject == "Kaputt angekommen"
    assert complaint.customer_id == interaction.customer_id
    assert interaction.meta["complaint_id"] == complaint.id


async def test_a_phone_only_submission_is_filed_under_the_number_and_mails_nothing(
    client: httpx.AsyncClient, hub: Hub
):
    answer = await post_form(client, anna(hub, email="", phone="0151 2345678"))

    assert answer.status_code == 303
    [interaction] = await stored(hub)
    assert interaction.sender == "+491512345678"
    assert await confirmations(hub) == []
    assert "Bestätigung" not in (await client.get(answer.headers["location"])).text


# -- once only -------------------------------------------------------------------------


async def test_the_same_form_sent_twice_with_its_token_is_stored_and_confirmed_once(
    client: httpx.AsyncClient, hub: Hub
):
    fields = anna(hub)

    first, second = await post_form(client, fields), await post_form(client, fields)

    assert first.status_code == second.status_code == 303
    assert await reference_on(client, first) == await reference_on(client, second)
    assert len(await stored(hub)) == 1
    assert len(await confirmations(hub)) == 1


async def test_a_form_edited_and_sent_again_with_its_old_token_is_a_new_submission(
    client: httpx.AsyncClient, hub: Hub
):
    token = form_token(hub)

    await post_form(client, anna(hub, form_token=token))
    await post_form(client, anna(hub, form_token=token, message="Und noch etwas."))

    assert [i.text for i in await stored(hub)] == [
        "Wo bleibt meine Bestellung 4711?",
        "Und noch etwas.",
    ]


# -- spam ------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
async def test_a_filled_honeypot_is_refused_stores_nothing_and_is_counted(
    client: httpx.AsyncClient, hub: Hub, as_json: bool
):
    fields = anna(hub, website="http://cheap-pills.example")

    answer = await (client.post(FORM, json=fields) if as_json else post_form(client, fields))

    assert answer.status_code == 422
    if as_json:
        assert answer.json()["reason"] == "honeypot"
    else:
        assert "automated spam" in answer.text and 'role="alert"' in answer.text
    assert await count(hub, Interaction) == 0
    assert await rejected_count(client, "honeypot") == 1


async def test_a_form_sent_sooner_than_a_person_can_fill_it_is_refused(
    client: httpx.AsyncClient, hub: Hub
):
    served = await client.get(FORM)
    token = re.search(r'name="form_token" value="([^"]+)"', served.text).group(1)

    answer = await post_form(client, anna(hub, form_token=token))

    assert answer.status_code == 422
    assert "very fast" in answer.text
    assert 'value="Anna Berger"' in answer.text  # the person can just send it again
    assert await count(hub, Interaction) == 0
    assert await rejected_count(client, "too_fast") == 1


@pytest.mark.parametrize("token", [None, "forged.token"], ids=["missing", "forged"])
async def test_a_form_post_without_a_genuine_form_token_is_refused(
    client: httpx.AsyncClient, hub: Hub, token: str | None
):
    fields = {key: value for key, value in anna(hub).items() if key != "form_token"}
    if token is not None:
        fields["form_token"] = token

    answer = await post_form(client, fields)

    assert answer.status_code == 400
    assert await count(hub, Interaction) == 0
    assert await rejected_count(client, "form_token") == 1


async def test_a_form_served_more_than_a_day_ago_is_refused_as_expired(
    client: httpx.AsyncClient, hub: Hub
):
    answer = await post_form(client, anna(hub, form_token=form_token(hub, age=2 * 86400)))

    assert answer.status_code == 400
    assert "open for too long" in answer.text
    assert await count(hub, Interaction) == 0


async def test_the_sixth_submission_from_one_address_in_ten_minutes_is_refused_429(
    client: httpx.AsyncClient, hub: Hub
):
    def body(number: int) -> dict[str, str]:
        return {"name": "Anna", "email": "anna@example.com", "message": f"Nachricht {number}"}

    answers = [await client.post(FORM, json=body(n)) for n in range(spam.RATE_LIMIT + 1)]

    assert [a.status_code for a in answers] == [201] * spam.RATE_LIMIT + [429]
    assert answers[-1].json()["reason"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["retry-after"]) <= spam.RATE_WINDOW_SECONDS
    assert len(await stored(hub)) == spam.RATE_LIMIT
    assert await rejected_count(client, "rate_limited") == 1


async def test_a_repeat_of_a_counted_submission_passes_a_full_rate_limit(
    client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(spam, "RATE_LIMIT", 1)
    body = {"name": "Anna", "email": "anna@example.com", "message": "Hallo", "submission_id": "s1"}

    first = await client.post(FORM, json=body)
    other = await client.post(FORM, json={**body, "submission_id": "s2"})
    again = await client.post(FORM, json=body)

    assert [first.status_code, other.status_code, again.status_code] == [201, 429, 200]


async def test_the_rate_limit_refusal_is_shown_on_the_form_page_in_german(
    client: httpx.AsyncClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(spam, "RATE_LIMIT", 1)
    await client.post(f"{FORM}?lang=de", data=anna(hub))

    answer = await client.post(f"{FORM}?lang=de", data=anna(hub, message="Noch eine"))

    assert answer.status_code == 429
    assert "mehrere Nachrichten gesendet" in answer.text
    assert "Bitte versuchen Sie es in 10 Minuten noch einmal." in answer.text


def test_the_rate_window_frees_a_slot_when_the_oldest_submission_leaves_it():
    window = spam.SlidingWindow()

    allowed = [window.hit("10.0.0.1", f"s{n}", 100.0 + n, 2, 60.0) for n in range(3)]

    assert allowed == [True, True, False]
    assert window.wait_seconds("10.0.0.1", 102.0, 60.0) == 58.0
    assert window.hit("10.0.0.1", "s3", 160.5, 2, 60.0)
    assert not window.hit("10.0.0.1", "s4", 160.5, 2, 60.0)


def test_the_rate_window_forgets_idle_addresses_when_it_tracks_too_many(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(spam, "MAX_TRACKED_ADDRESSES", 3)
    window = spam.SlidingWindow()
    for number in range(3):
        window.hit(f"10.0.0.{number}", "s", float(number), 5, 60.0)

    window.hit("10.0.0.9", "s", 60.5, 5, 60.0)

    assert sorted(window.hits) == ["10.0.0.1", "10.0.0.2", "10.0.0.9"]


# -- mistakes --------------------------------------------------------------------------


async def test_missing_fields_show_the_form_again_with_each_error_beside_its_field(
    client: httpx.AsyncClient, hub: Hub
):
    answer = await post_form(client, anna(hub, name="", email="", message="Nur ein Gruß"))

    assert answer.status_code == 422
    page = answer.text
    assert '<span id="name-error" class="error-message">' in page
    assert 'aria-describedby="name-error"' in input_tag(page, "name")
    assert 'aria-invalid="true"' in input_tag(page, "name")
    assert "email-error" in input_tag(page, "email")
    assert "phone-error" not in page  # the e-mail field carries the either-or error
    assert "Nur ein Gruß</textarea>" in page  # what was typed is kept
    assert 'value="Lieferung"' in input_tag(page, "subject")
    assert '<option value="order" selected>' in page
    assert await count(hub, Interaction) == 0


async def test_missing_fields_in_json_are_answered_422_per_field(
    client: httpx.AsyncClient, hub: Hub
):
    answer = await client.post(FORM, json={"email": "kein-at-zeichen", "topic": "lottery"})

    assert answer.status_code == 422
    assert answer.json() == {
        "errors": {
            "name": "Please enter your name.",
            "message": "Please enter your message.",
            "email": "Please enter an e-mail address like name@example.com.",
            "topic": "Please choose one of the topics.",
        }
    }


async def test_a_field_longer_than_its_limit_is_an_error_of_that_field(
    client: httpx.AsyncClient, hub: Hub
):
    answer = await client.post(
        FORM, json={"name": "x" * 201, "email": "anna@example.com", "message": "Hallo"}
    )

    assert answer.json() == {"errors": {"name": "Please use at most 200 characters."}}


# -- text stays text -------------------------------------------------------------------


async def test_a_script_in_the_message_is_stored_as_text_and_shown_escaped(
    client: httpx.AsyncClient, hub: Hub
):
    script = "<script>alert('hi')</script>\r\nZweite Zeile\x00"

    accepted = await post_form(client, anna(hub, message=script, name="<b>Anna</b>"))
    refused = await post_form(client, anna(hub, message=script, name=""))

    [interaction] = await stored(hub)
    assert interaction.text == "<script>alert('hi')</script>\nZweite Zeile"
    assert interaction.html is None
    thanks = (await client.get(accepted.headers["location"])).text
    for page in (thanks, refused.text):
        assert "<script>alert" not in page and "<b>Anna" not in page
    assert "&lt;script&gt;alert(&#39;hi&#39;)&lt;/script&gt;" in refused.text


# -- languages -------------------------------------------------------------------------


async def test_the_form_is_german_for_a_browser_that_prefers_german(
    client: httpx.AsyncClient, hub: Hub
):
    page = await client.get(FORM, headers={"Accept-Language": "fr;q=1, de-AT;q=0.9, en;q=0.5"})

    assert '<html lang="de">' in page.text
    assert '<label for="field-name">Ihr Name' in page.text
    assert page.headers["content-language"] == "de"
    assert page.headers["cache-control"] == "no-store"


async def test_the_form_is_english_when_the_page_asks_for_it_whatever_the_browser_prefers(
    client: httpx.AsyncClient, hub: Hub
):
    page = await client.get(f"{FORM}?lang=en", headers={"Accept-Language": "de-DE"})

    assert '<html lang="en">' in page.text
    assert '<label for="field-name">Your name' in page.text


def test_every_text_exists_in_german_and_english():
    assert TEXTS["de"].keys() == TEXTS["en"].keys()


@pytest.mark.parametrize(
    ("requested", "header", "chosen"),
    [
        (None, "de-DE,de;q=0.9,en;q=0.8", "de"),
        (None, "en;q=0.5, de;q=0.9", "de"),
        (None, "fr, *;q=0.1", "en"),
        (None, "de;q=0", "en"),
        ("de", "en", "de"),
        ("xx", "de", "de"),
        (None, None, "en"),
    ],
)
def test_the_language_is_the_requested_one_else_the_preferred_one_we_have(
    requested: str | None, header: str | None, chosen: str
):
    assert choose_language(requested, header) == chosen
