"""Calls through Twilio: signed webhooks in, a screen pop out, TwiML that routes the call.

Webhooks are signed exactly as Twilio signs them: twilio's `RequestValidator`
over `PUBLIC_URL` plus the path, while the client calls http://hub.test, as a
hub behind a proxy sees it.
"""

from __future__ import annotations

import httpx
import pytest
from twilio.request_validator import RequestValidator

from hub.context import Hub
from hub.models import Conversation, Interaction
from tests.conftest import SignedIn
from tests.voice_steps import (
    CALLS,
    KNOWN_NUMBER,
    PUBLIC_URL,
    STATUS,
    TOKEN,
    UNKNOWN_NUMBER,
    a_customer,
    an_a_customer,
    call,
    call_meta,
    count,
    go_online,
    incoming,
    post_signed,
    report,
    screen_pops,
    signature,
    twiml,
)


async def test_a_call_from_an_a_customer_rings_their_online_key_account_agent(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id = await an_a_customer(client, agent)
    await go_online(client, agent)

    answer = twiml(await call(client, "CA-a-1", KNOWN_NUMBER))

    dial = answer.find("Dial")
    assert dial is not None and dial.findtext("Client") == f"agent-{agent.id}"
    assert dial.get("action") == f"{PUBLIC_URL}/channels/voice/twilio/dial-ended"
    assert int(dial.get("timeout", "0")) > 0
    assert answer.find("Say").get("language") == "en-GB"
    [pop] = screen_pops(voice)
    assert (pop["customer_id"], pop["agent_id"], pop["routed_to"]) == (
        customer_id,
        agent.id,
        f"agent-{agent.id}",
    )


async def test_an_a_customer_with_an_open_complaint_rings_the_key_account_with_the_complaint_popped(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id = await an_a_customer(client, agent)
    complaint = await client.post(
        "/api/complaints",
        headers=agent.headers,
        json={"customer_id": customer_id, "subject": "Lieferung beschädigt"},
    )
    assert complaint.status_code == 201, complaint.text
    await go_online(client, agent)

    answer = twiml(await call(client, "CA-pop-1", KNOWN_NUMBER))

    [pop] = screen_pops(voice)
    assert pop["caller"] == "+491512345678"
    assert pop["customer_id"] == customer_id and pop["card"]["id"] == customer_id
    assert [c["subject"] for c in pop["card"]["open_complaints"]] == ["Lieferung beschädigt"]
    async with voice.sessions() as session:
        conversation = await session.get(Conversation, pop["conversation_id"])
    assert conversation is not None and conversation.channel == "voice"
    assert (pop["agent_id"], conversation.assignee_id, conversation.priority > 0) == (
        agent.id,
        agent.id,
        True,
    )
    assert answer.find("Dial").findtext("Client") == f"agent-{agent.id}"


async def test_a_call_from_an_unknown_number_is_enqueued_to_the_pool(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await go_online(client, agent)

    answer = twiml(await call(client, "CA-unknown-1", UNKNOWN_NUMBER))

    enqueue = answer.find("Enqueue")
    assert enqueue is not None and enqueue.text == "pool"
    assert enqueue.get("action") == f"{PUBLIC_URL}/channels/voice/twilio/queue-left?queue=pool"
    [pop] = screen_pops(voice)
    assert (pop["queue"], pop["routed_to"], pop["card"]["is_prospect"]) == (
        "pool",
        "queue:pool",
        True,
    )


async def test_a_german_customer_is_greeted_in_german(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await a_customer(client, agent, language="de")
    await go_online(client, agent)

    greeting = twiml(await call(client, "CA-de-1", KNOWN_NUMBER)).find("Say")

    assert greeting is not None and greeting.get("language") == "de-DE"
    assert greeting.text == "Vielen Dank für Ihren Anruf."


async def test_with_nobody_online_the_caller_may_leave_a_voicemail_and_is_promised_a_callback(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await an_a_customer(client, agent)  # the key-account agent is offline, as everyone

    answer = twiml(await call(client, "CA-vm-1", KNOWN_NUMBER))

    assert answer.find("Dial") is None and answer.find("Enqueue") is None
    assert answer.findtext("Say") == "Thank you for calling."
    prompt = answer.findall("Say")[-1].text or ""
    assert "leave a message" in prompt and "call you back" in prompt
    record = answer.find("Record")
    voicemail_url = f"{PUBLIC_URL}/channels/voice/twilio/voicemail"
    assert record is not None
    assert (record.get("action"), record.get("recordingStatusCallback")) == (
        voicemail_url,
        voicemail_url,
    )


async def test_a_voicemail_recording_is_kept_on_the_call(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await call(client, "CA-vm-2", KNOWN_NUMBER)
    recording = {
        "CallSid": "CA-vm-2",
        "RecordingSid": "RE123",
        "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE123",
        "RecordingDuration": "17",
    }

    goodbye = twiml(await post_signed(client, "/channels/voice/twilio/voicemail", recording))
    status = await post_signed(
        client, "/channels/voice/twilio/voicemail", {**recording, "RecordingStatus": "completed"}
    )

    assert goodbye.find("Hangup") is not None and status.status_code == 200
    assert (await call_meta(voice, "CA-vm-2"))["voicemail"] == {
        "url": recording["RecordingUrl"],
        "duration": 17,
        "sid": "RE123",
        "status": "completed",
    }


async def test_the_same_call_sid_again_stores_nothing_new_and_answers_the_same(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await an_a_customer(client, agent)
    await go_online(client, agent)
    first = await call(client, "CA-retry-1", KNOWN_NUMBER)
    await go_online(client, agent, "away")  # would change a fresh decision

    again = await call(client, "CA-retry-1", KNOWN_NUMBER)

    assert again.status_code == 200 and again.text == first.text
    assert await count(voice, Interaction, Interaction.channel == "voice") == 1
    assert await count(voice, Conversation, Conversation.channel == "voice") == 1
    assert len(screen_pops(voice)) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Twilio-Signature": "Zm9yZ2VkIHNpZ25hdHVyZQ=="},
        {"X-Twilio-Signature": signature(CALLS, incoming("CA-bad", KNOWN_NUMBER), "other")},
        # Signed for the URL the process sees, not the public one Twilio calls.
        {
            "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(
                f"http://hub.test{CALLS}", incoming("CA-bad", KNOWN_NUMBER)
            )
        },
    ],
    ids=["unsigned", "forged", "other-token", "wrong-url"],
)
async def test_an_unsigned_or_forged_call_is_refused_and_stores_nothing(
    voice: Hub, client: httpx.AsyncClient, headers: dict[str, str]
):
    response = await client.post(CALLS, data=incoming("CA-bad", KNOWN_NUMBER), headers=headers)

    assert response.status_code == 403
    assert await count(voice, Interaction) == 0
    assert screen_pops(voice) == []


async def test_an_unsigned_status_callback_is_refused_and_changes_nothing(
    voice: Hub, client: httpx.AsyncClient
):
    await call(client, "CA-unsigned-status", KNOWN_NUMBER)

    response = await client.post(
        STATUS, data={"CallSid": "CA-unsigned-status", "CallStatus": "busy"}
    )

    assert response.status_code == 403
    assert (await call_meta(voice, "CA-unsigned-status"))["status"] == "ringing"


async def test_a_call_without_a_caller_number_is_a_bad_request(
    voice: Hub, client: httpx.AsyncClient
):
    response = await call(client, "CA-no-from", None)

    assert response.status_code == 400
    assert await count(voice, Interaction) == 0


@pytest.mark.parametrize("withheld", ["anonymous", "+266696687", "+86282452253", "Restricted"])
async def test_a_withheld_number_is_stored_flagged_and_queued_to_the_pool(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn, withheld: str
):
    await go_online(client, agent)

    first = twiml(await call(client, "CA-withheld-1", withheld))
    second = twiml(await call(client, "CA-withheld-2", withheld))

    assert first.findtext("Enqueue") == second.findtext("Enqueue") == "pool"
    meta = await call_meta(voice, "CA-withheld-1")
    assert meta["unparseable_number"] == withheld
    pops = screen_pops(voice)
    assert [pop["caller"] for pop in pops] == [withheld, withheld]
    # Withheld callers are strangers to each other: no shared customer, no shared thread.
    assert pops[0]["customer_id"] != pops[1]["customer_id"]


async def test_status_callbacks_record_answer_and_duration_whatever_their_order(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await an_a_customer(client, agent)
    await go_online(client, agent)
    await call(client, "CA-status-1", KNOWN_NUMBER)
    final = {"CallStatus": "completed", "CallDuration": "42", "DialCallStatus": "completed"}

    await report(client, "CA-status-1", **final)
    await report(client, "CA-status-1", CallStatus="in-progress")
    await report(client, "CA-status-1", CallStatus="ringing")
    await report(client, "CA-status-1", **{**final, "CallDuration": "0"})
    await report(client, "CA-status-1", CallStatus="no-answer")

    meta = await call_meta(voice, "CA-status-1")
    assert (meta["status"], meta["duration"], meta["answered_by"]) == (
        "completed",
        42,
        f"agent-{agent.id}",
    )
    assert meta["ended_at"]
    assert await count(voice, Interaction, Interaction.kind == "missed_call") == 0


async def test_a_dialled_agent_named_by_the_callback_is_recorded_as_the_one_who_answered(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await call(client, "CA-called-1", UNKNOWN_NUMBER)

    await report(
        client,
        "CA-called-1",
        CallStatus="completed",
        DialCallStatus="answered",
        Called="client:agent-99",
    )

    assert (await call_meta(voice, "CA-called-1"))["answered_by"] == "agent-99"
