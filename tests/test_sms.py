"""SMS through Twilio: signed webhooks in, keywords, the outbox out through twilio's own client.

Inbound webhooks are signed with twilio's `RequestValidator` over the public
URL (https://hub.example.com) while the test client calls http://hub.test, as
behind a proxy. Outbound messages reach the loopback stand-in for Twilio's REST
API through `TwilioSmsSender`, run by the real dispatcher.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from channels.sms.keywords import KEYWORD_RULES, find_keyword
from channels.sms.sending import TwilioSmsSender
from hub.context import Hub
from hub.models import Block, Conversation, Identity, OutboxMessage
from tests.conftest import SignedIn
from tests.peers.twilio import (
    OUR_NUMBER,
    TwilioApi,
    incoming_sms,
    post_signed,
    sign,
    status_callback,
)
from tests.sms_steps import (
    ANNA,
    PUBLIC_URL,
    STATUS,
    WEBHOOK,
    active_stop_blocks,
    anna,
    dispatch,
    outbox_row,
    queue_service_sms,
    rows_of,
    sms_messages,
    text_in,
    twilio_settings,
)


@pytest.fixture
def sms_hub(hub: Hub, twilio_api: TwilioApi) -> Hub:
    """The hub, configured for Twilio; the webhooks read hub.settings on every request."""
    hub.settings = twilio_settings(hub.settings, twilio_api)
    return hub


@pytest.fixture
async def sender(sms_hub: Hub) -> AsyncIterator[TwilioSmsSender]:
    built = TwilioSmsSender.from_settings(sms_hub.settings)
    assert built is not None
    yield built
    await built.close()


# Inbound


async def test_a_signed_sms_from_a_known_number_lands_in_that_customers_sms_conversation(
    sms_hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id = await anna(client, agent)

    first = await text_in(client, "+49 151 2345678", "Wo bleibt meine Lieferung?")
    second = await text_in(client, ANNA, "Bestellung 4711 – danke 😀")

    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"].startswith("text/xml")
    assert first.text.endswith("<Response />")
    history = await client.get(f"/api/customers/{customer_id}/history", headers=agent.headers)
    texts = [(e["channel"], e["text"]) for e in history.json()["entries"]]
    assert texts == [("sms", "Bestellung 4711 – danke 😀"), ("sms", "Wo bleibt meine Lieferung?")]
    stored = await sms_messages(sms_hub)
    assert {m.customer_id for m in stored} == {customer_id}
    assert stored[0].conversation_id == stored[1].conversation_id
    conversation = await rows_of(
        sms_hub, Conversation, Conversation.id == stored[0].conversation_id
    )
    assert conversation[0].channel == "sms"
    assert stored[0].meta["to"] == OUR_NUMBER


async def test_the_same_webhook_again_stores_nothing_new(sms_hub: Hub, client: httpx.AsyncClient):
    fields = incoming_sms(ANNA, "Hallo", sid="SM" + "a" * 32)

    answers = [await post_signed(client, WEBHOOK, fields, public_url=PUBLIC_URL) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 200]
    assert [m.external_id for m in await sms_messages(sms_hub)] == ["SM" + "a" * 32]


async def test_without_a_message_sid_the_idempotency_token_keeps_a_retry_from_storing_twice(
    sms_hub: Hub, client: httpx.AsyncClient
):
    fields = [(n, v) for n, v in incoming_sms(ANNA, "Hallo") if n != "MessageSid"]
    token = {"I-Twilio-Idempotency-Token": "e5a0c7f4-retry-token"}

    for _ in range(2):
        answer = await post_signed(client, WEBHOOK, fields, public_url=PUBLIC_URL, headers=token)
        assert answer.status_code == 200

    assert [m.external_id for m in await sms_messages(sms_hub)] == ["e5a0c7f4-retry-token"]


async def test_unsigned_forged_and_altered_webhooks_are_refused_stored_nowhere_and_counted(
    sms_hub: Hub, client: httpx.AsyncClient
):
    fields = incoming_sms(ANNA, "Hallo")
    altered = [(n, "Bitte alles stornieren" if n == "Body" else v) for n, v in fields]
    url = PUBLIC_URL + WEBHOOK
    forged = sign(url, fields, "not-the-auth-token")

    answers = [
        await client.post(WEBHOOK, data=dict(fields)),
        await post_signed(client, WEBHOOK, fields, public_url=PUBLIC_URL, signature=forged),
        await post_signed(
            client, WEBHOOK, altered, public_url=PUBLIC_URL, signature=sign(url, fields)
        ),
    ]

    assert [a.status_code for a in answers] == [403, 403, 403]
    assert await sms_messages(sms_hub) == []
    metrics = (await client.get("/metrics")).text
    assert f'omnihub_webhook_rejected_total{{path="{WEBHOOK}"}} 3.0' in metrics


async def test_behind_a_proxy_only_the_signature_over_the_public_url_counts(
    sms_hub: Hub, client: httpx.AsyncClient
):
    over_public = await text_in(client, ANNA, "Hallo")
    over_seen = await post_signed(
        client, WEBHOOK, incoming_sms(ANNA, "Hallo"), public_url="http://hub.test"
    )

    assert (over_public.status_code, over_seen.status_code) == (200, 403)


async def test_an_mms_keeps_its_media_links_and_a_repeated_field_still_validates(
    sms_hub: Hub, client: httpx.AsyncClient
):
    media = [
        ("https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM1/Media/ME1", "image/jpeg"),
        ("https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM1/Media/ME2", "image/png"),
    ]
    fields = incoming_sms(ANNA, "", media=media)
    fields += [("MediaUrl", media[0][0]), ("MediaUrl", media[1][0])]  # one name, two values

    answer = await post_signed(client, WEBHOOK, fields, public_url=PUBLIC_URL)

    assert answer.status_code == 200
    (stored,) = await sms_messages(sms_hub)
    assert stored.text == ""
    assert stored.meta["num_media"] == 2
    assert stored.meta["media"] == [{"url": url, "content_type": kind} for url, kind in media]


@pytest.mark.parametrize("missing", ["From", "Body"])
async def test_a_webhook_without_from_or_body_is_refused_with_400(
    sms_hub: Hub, client: httpx.AsyncClient, missing: str
):
    fields = [(n, v) for n, v in incoming_sms(ANNA, "Hallo") if n != missing]

    answer = await post_signed(client, WEBHOOK, fields, public_url=PUBLIC_URL)

    assert answer.status_code == 400
    assert await sms_messages(sms_hub) == []


async def test_an_unparseable_sender_number_is_stored_with_its_raw_value_and_flagged(
    sms_hub: Hub, client: httpx.AsyncClient
):
    answers = [await text_in(client, "PAKETDIENST", body) for body in ("Zustellung heute", "STOP")]

    assert [a.status_code for a in answers] == [200, 200]
    stored = await sms_messages(sms_hub)
    assert [m.sender for m in stored] == ["sms:PAKETDIENST", "sms:PAKETDIENST"]
    assert all(m.meta["unparseable_number"] and m.meta["from"] == "PAKETDIENST" for m in stored)
    assert "keyword" not in stored[1].meta
    identities = await rows_of(sms_hub, Identity, Identity.customer_id == stored[0].customer_id)
    assert [(i.kind, i.value) for i in identities] == [("chat", "sms:PAKETDIENST")]
    assert await rows_of(sms_hub, Block) == []


# Keywords


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        *[(word, "stop") for word in sorted(KEYWORD_RULES[0].words)],
        *[(word.lower(), "start") for word in sorted(KEYWORD_RULES[1].words)],
        (" Help\n", "help"),
        ("info", "help"),
        ("Stop sending me adverts", None),
        ("STOP!", None),
        ("", None),
    ],
)
def test_a_keyword_is_the_whole_trimmed_message_in_any_case(text: str, rule: str | None):
    found = find_keyword(text)

    assert (found.name if found else None) == rule


async def test_stop_blocks_every_later_sms_to_the_number_and_start_lifts_it(
    sms_hub: Hub, client: httpx.AsyncClient, sender: TwilioSmsSender, twilio_api: TwilioApi
):
    queued_before = await queue_service_sms(sms_hub, "before-stop")

    assert (await text_in(client, "0151 2345678", " Stop ")).status_code == 200
    await dispatch(sms_hub, sender)
    queued_after = await queue_service_sms(sms_hub, "after-stop")

    assert (await outbox_row(sms_hub, queued_before.id)).status == "blocked"
    assert (await outbox_row(sms_hub, queued_before.id)).blocked_reasons == ["block:sms_stop"]
    assert queued_after.status == "blocked"
    assert twilio_api.messages == []
    assert [m.meta.get("keyword") for m in await sms_messages(sms_hub)] == ["stop"]

    assert (await text_in(client, ANNA, "start")).status_code == 200
    queued_later = await queue_service_sms(sms_hub, "after-start")
    await dispatch(sms_hub, sender)

    assert await active_stop_blocks(sms_hub) == []
    assert (await outbox_row(sms_hub, queued_later.id)).status == "sent"
    assert [m.to for m in twilio_api.messages] == [ANNA]


async def test_a_late_retry_of_stop_does_not_undo_the_start_that_followed_it(
    sms_hub: Hub, client: httpx.AsyncClient
):
    stop = incoming_sms(ANNA, "STOP")

    for fields in (stop, incoming_sms(ANNA, "START"), stop):
        assert (await post_signed(client, WEBHOOK, fields, public_url=PUBLIC_URL)).is_success

    assert await active_stop_blocks(sms_hub) == []
    assert len(await rows_of(sms_hub, Block)) == 1


async def test_help_queues_the_configured_help_text_once_through_the_outbox(
    sms_hub: Hub, client: httpx.AsyncClient, sender: TwilioSmsSender, twilio_api: TwilioApi
):
    sms_hub.settings = sms_hub.settings.model_copy(update={"sms_help_text": "Hilfe: 0800 123"})
    fields = incoming_sms(ANNA, "HELP", sid="SM" + "b" * 32)

    for _ in range(2):
        assert (await post_signed(client, WEBHOOK, fields, public_url=PUBLIC_URL)).is_success
    await dispatch(sms_hub, sender)

    (row,) = await rows_of(sms_hub, OutboxMessage)
    assert (row.idempotency_key, row.purpose, row.status) == (
        f"sms-help:SM{'b' * 32}",
        "service",
        "sent",
    )
    assert [(m.to, m.body) for m in twilio_api.messages] == [(ANNA, "Hilfe: 0800 123")]
    assert [m.text for m in await sms_messages(sms_hub)] == ["HELP"]


# Outbound


async def test_an_agents_reply_reaches_twilio_and_the_delivered_callback_marks_it_delivered(
    sms_hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    sender: TwilioSmsSender,
    twilio_api: TwilioApi,
):
    customer_id = await anna(client, agent)
    await text_in(client, ANNA, "Wann kommt mein Paket?")
    (inbound,) = await sms_messages(sms_hub)

    reply = await client.post(
        f"/api/conversations/{inbound.conversation_id}/reply",
        headers=agent.headers,
        json={"text": "Morgen zwischen 10 und 12 Uhr."},
    )
    await dispatch(sms_hub, sender)

    assert reply.status_code == 202, reply.text
    (sent,) = twilio_api.messages
    assert (sent.to, sent.get("From"), sent.body) == (
        ANNA,
        OUR_NUMBER,
        "Morgen zwischen 10 und 12 Uhr.",
    )
    assert sent.get("StatusCallback") == PUBLIC_URL + STATUS
    (row,) = await rows_of(sms_hub, OutboxMessage)
    assert (row.status, row.provider_id) == ("sent", sent.sid)

    callback = status_callback(sent.sid, "delivered", to=ANNA)
    answer = await post_signed(client, STATUS, callback, public_url=PUBLIC_URL)

    assert answer.status_code == 204
    assert (await outbox_row(sms_hub, row.id)).status == "delivered"
    history = await client.get(f"/api/customers/{customer_id}/history", headers=agent.headers)
    assert history.json()["entries"][0]["text"].endswith("delivered")


async def test_status_callbacks_out_of_order_or_repeated_never_move_a_message_backwards(
    sms_hub: Hub, client: httpx.AsyncClient, sender: TwilioSmsSender, twilio_api: TwilioApi
):
    row = await queue_service_sms(sms_hub, "order")
    await dispatch(sms_hub, sender)
    (sent,) = twilio_api.messages

    for status in ("delivered", "sent", "queued", "delivered", "undelivered"):
        callback = status_callback(sent.sid, status, to=ANNA)
        answer = await post_signed(client, STATUS, callback, public_url=PUBLIC_URL)
        assert answer.status_code == 204

    row = await outbox_row(sms_hub, row.id)
    assert (row.status, row.provider_status) == ("delivered", "delivered")


async def test_a_status_callback_for_a_message_the_hub_never_sent_is_acknowledged_and_ignored(
    sms_hub: Hub, client: httpx.AsyncClient
):
    callback = status_callback("SM" + "c" * 32, "delivered", to=ANNA)

    answer = await post_signed(client, STATUS, callback, public_url=PUBLIC_URL)

    assert answer.status_code == 204


async def test_a_status_callback_is_verified_and_needs_its_sid_and_status(
    sms_hub: Hub, client: httpx.AsyncClient
):
    callback = status_callback("SM" + "c" * 32, "delivered", to=ANNA)
    incomplete = [(n, v) for n, v in callback if n not in ("MessageStatus", "SmsStatus")]

    unsigned = await client.post(STATUS, data=dict(callback))
    without_status = await post_signed(client, STATUS, incomplete, public_url=PUBLIC_URL)

    assert (unsigned.status_code, without_status.status_code) == (403, 400)


async def test_a_json_status_callback_signed_through_body_sha256_is_applied(
    sms_hub: Hub, client: httpx.AsyncClient, sender: TwilioSmsSender, twilio_api: TwilioApi
):
    row = await queue_service_sms(sms_hub, "json")
    await dispatch(sms_hub, sender)
    (sent,) = twilio_api.messages
    body = {"MessageSid": sent.sid, "MessageStatus": "delivered", "To": ANNA}

    answer = await post_signed(client, STATUS, json_body=body, public_url=PUBLIC_URL)
    forged = await post_signed(
        client, STATUS, json_body=body, public_url=PUBLIC_URL, token="not-the-auth-token"
    )

    assert (answer.status_code, forged.status_code) == (204, 403)
    assert (await outbox_row(sms_hub, row.id)).status == "delivered"


async def test_twilio_refusing_a_message_with_21610_fails_the_row_for_good(
    sms_hub: Hub, sender: TwilioSmsSender, twilio_api: TwilioApi
):
    row = await queue_service_sms(sms_hub, "refused")
    twilio_api.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")

    await dispatch(sms_hub, sender)

    row = await outbox_row(sms_hub, row.id)
    assert row.status == "failed"
    assert "21610" in (row.last_error or "") and "unsubscribed" in (row.last_error or "")
    assert twilio_api.messages == []


async def test_a_21610_status_callback_fails_the_message_and_blocks_the_number(
    sms_hub: Hub, client: httpx.AsyncClient, sender: TwilioSmsSender, twilio_api: TwilioApi
):
    row = await queue_service_sms(sms_hub, "opted-out")
    await dispatch(sms_hub, sender)
    (sent,) = twilio_api.messages

    callback = status_callback(
        sent.sid, "failed", to=ANNA, error_code=21610, error_message="Unsubscribed recipient"
    )
    answer = await post_signed(client, STATUS, callback, public_url=PUBLIC_URL)
    later = await queue_service_sms(sms_hub, "after-opt-out")

    assert answer.status_code == 204
    row = await outbox_row(sms_hub, row.id)
    assert row.status == "failed" and "21610" in (row.last_error or "")
    assert len(await active_stop_blocks(sms_hub)) == 1
    assert later.status == "blocked"


async def test_a_signed_sms_with_nul_in_its_body_is_stored_with_a_replacement_character(
    sms_hub: Hub, client: httpx.AsyncClient
):
    # The database refuses NUL; a 500 here would be retried by Twilio until it gave up.
    answer = await text_in(client, ANNA, "Paket\x00 fehlt")

    assert answer.status_code == 200
    assert [m.text for m in await sms_messages(sms_hub)] == ["Paket\ufffd fehlt"]
