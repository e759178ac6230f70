"""Calls through Twilio: signed webhooks in, a screen pop out, TwiML that routes the call.

Webhooks are signed exactly as Twilio signs them: twilio's `RequestValidator`
over `PUBLIC_URL` plus the path, while the client calls http://hub.test, as a
hub behind a proxy sees it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from channels.voice.call_plan import CallSituation, plan_call
from hub.calls import find_call
from hub.context import Hub
from hub.models import Agent, Conversation, Interaction
from tests.conftest import MakeAgent, SignedIn

TOKEN = "twilio-test-auth-token-0123456789"
PUBLIC_URL = "https://hub.example.com"
CALLS = "/channels/voice/twilio"
STATUS = "/channels/voice/twilio/status"
KNOWN_NUMBER = "+49 151 2345678"
UNKNOWN_NUMBER = "+49 170 9876543"


@pytest.fixture
def voice(hub: Hub) -> Hub:
    hub.settings = hub.settings.model_copy(
        update={"twilio_auth_token": TOKEN, "public_url": PUBLIC_URL}
    )
    return hub


def signature(path: str, params: dict[str, str], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(PUBLIC_URL + path, params)


async def post_signed(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> httpx.Response:
    headers = {"X-Twilio-Signature": signature(path, params)}
    return await client.post(path, data=params, headers=headers)


def incoming(call_sid: str, caller: str | None, **extra: str) -> dict[str, str]:
    params = {
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "CallSid": call_sid,
        "To": "+4930123456789",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
        **extra,
    }
    if caller is not None:
        params["From"] = caller
    return params


async def call(client: httpx.AsyncClient, call_sid: str, caller: str | None) -> httpx.Response:
    return await post_signed(client, CALLS, incoming(call_sid, caller))


def twiml(response: httpx.Response) -> ElementTree.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    return ElementTree.fromstring(response.text)  # noqa: S314 - the hub's own TwiML


async def report(client: httpx.AsyncClient, call_sid: str, **fields: str) -> None:
    response = await post_signed(client, STATUS, {"CallSid": call_sid, **fields})
    assert response.status_code == 204, response.text


async def go_online(client: httpx.AsyncClient, agent: SignedIn, status: str = "online") -> None:
    response = await client.put(
        "/api/agents/me/presence", headers=agent.headers, json={"status": status}
    )
    assert response.status_code == 200, response.text


async def a_customer(client: httpx.AsyncClient, by: SignedIn, **fields: Any) -> int:
    body = {"name": "Anna Schmidt", "phones": [KNOWN_NUMBER], **fields}
    response = await client.post("/api/customers", headers=by.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def an_a_customer(client: httpx.AsyncClient, key_account: SignedIn, **fields: Any) -> int:
    return await a_customer(
        client, key_account, tier="A", key_account_agent_id=key_account.id, **fields
    )


def screen_pops(hub: Hub) -> list[dict[str, Any]]:
    return [event.data for event in hub.bus.replay(0) or [] if event.type == "call.ringing"]


async def count(hub: Hub, model: type[Any], *where: Any) -> int:
    async with hub.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def call_meta(hub: Hub, call_sid: str) -> dict[str, Any]:
    async with hub.sessions() as session:
        stored = await find_call(session, call_sid)
    assert stored is not None
    return stored.meta


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


@pytest.mark.parametrize(
    "final",
    [
        {"CallStatus": "no-answer"},
        {"CallStatus": "busy"},
        {"CallStatus": "canceled"},
        {"CallStatus": "completed", "CallDuration": "25"},  # voicemail, nobody took it
    ],
    ids=["no-answer", "busy", "canceled", "completed-unanswered"],
)
async def test_a_missed_call_from_a_known_customer_opens_one_callback_conversation(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn, final: dict[str, str]
):
    customer_id = await a_customer(client, agent)
    await call(client, "CA-missed-1", KNOWN_NUMBER)

    await report(client, "CA-missed-1", CallStatus="in-progress")
    await report(client, "CA-missed-1", **final)
    await report(client, "CA-missed-1", **final)

    callbacks = await count(
        voice,
        Conversation,
        Conversation.customer_id == customer_id,
        Conversation.thread_key == "callback:CA-missed-1",
    )
    assert callbacks == 1
    async with voice.sessions() as session:
        missed = (
            await session.scalars(select(Interaction).where(Interaction.kind == "missed_call"))
        ).one()
    assert missed.external_id == "CA-missed-1:missed"
    assert missed.text == "Missed call – please call back"
    assert missed.customer_id == customer_id


async def test_a_missed_call_from_an_unknown_caller_opens_no_callback(
    voice: Hub, client: httpx.AsyncClient
):
    await call(client, "CA-missed-unknown", UNKNOWN_NUMBER)

    await report(client, "CA-missed-unknown", CallStatus="no-answer")

    assert (await call_meta(voice, "CA-missed-unknown"))["status"] == "no-answer"
    assert await count(voice, Interaction, Interaction.kind == "missed_call") == 0


async def test_a_missed_withheld_call_opens_no_callback(voice: Hub, client: httpx.AsyncClient):
    await call(client, "CA-missed-anon", "anonymous")

    await report(client, "CA-missed-anon", CallStatus="busy")

    assert await count(voice, Interaction, Interaction.kind == "missed_call") == 0


async def test_an_unanswered_dial_falls_back_to_the_queue_when_another_agent_is_online(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn, make_agent: MakeAgent
):
    await an_a_customer(client, agent)
    await go_online(client, agent)
    await go_online(client, await make_agent())
    await call(client, "CA-fallback-1", KNOWN_NUMBER)

    fallback = twiml(
        await post_signed(
            client,
            "/channels/voice/twilio/dial-ended",
            {"CallSid": "CA-fallback-1", "DialCallStatus": "no-answer"},
        )
    )

    assert fallback.find("Dial") is None
    assert "Thank you for calling" not in fallback.findtext("Say", "")
    assert "next free colleague" in fallback.findtext("Say", "")
    assert fallback.findtext("Enqueue") == "key_accounts"


async def test_an_unanswered_dial_to_the_only_agent_online_falls_back_to_voicemail(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await an_a_customer(client, agent)
    await go_online(client, agent)
    await call(client, "CA-fallback-2", KNOWN_NUMBER)

    fallback = twiml(
        await post_signed(
            client,
            "/channels/voice/twilio/dial-ended",
            {"CallSid": "CA-fallback-2", "DialCallStatus": "busy"},
        )
    )

    assert fallback.find("Enqueue") is None and fallback.find("Record") is not None


async def test_an_answered_dial_hangs_up_after_the_conversation_and_counts_as_answered(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await an_a_customer(client, agent)
    await go_online(client, agent)
    await call(client, "CA-dialled-1", KNOWN_NUMBER)

    ended = twiml(
        await post_signed(
            client,
            "/channels/voice/twilio/dial-ended",
            {"CallSid": "CA-dialled-1", "DialCallStatus": "completed", "DialCallDuration": "30"},
        )
    )
    await report(client, "CA-dialled-1", CallStatus="completed", CallDuration="35")

    assert ended.find("Hangup") is not None
    assert (await call_meta(voice, "CA-dialled-1"))["answered_by"] == f"agent-{agent.id}"
    assert await count(voice, Interaction, Interaction.kind == "missed_call") == 0


async def test_a_caller_bridged_from_the_queue_counts_as_answered_not_missed(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await a_customer(client, agent)
    await go_online(client, agent)
    answer = twiml(await call(client, "CA-queued-1", KNOWN_NUMBER))
    action = answer.find("Enqueue").get("action", "").removeprefix(PUBLIC_URL)

    left = await post_signed(client, action, {"CallSid": "CA-queued-1", "QueueResult": "bridged"})
    await report(client, "CA-queued-1", CallStatus="completed", CallDuration="80")

    assert twiml(left).find("Hangup") is not None
    meta = await call_meta(voice, "CA-queued-1")
    assert (meta["answered_by"], meta["duration"]) == ("queue:pool", 80)
    assert await count(voice, Interaction, Interaction.kind == "missed_call") == 0


async def test_a_caller_the_queue_lets_go_may_leave_a_voicemail_in_their_language(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await a_customer(client, agent, language="de")
    await go_online(client, agent)
    await call(client, "CA-queued-2", KNOWN_NUMBER)

    left = twiml(
        await post_signed(
            client,
            "/channels/voice/twilio/queue-left?queue=pool",
            {"CallSid": "CA-queued-2", "QueueResult": "error"},
        )
    )

    assert left.find("Record") is not None
    assert left.find("Say").get("language") == "de-DE"


async def test_a_status_callback_about_an_unknown_call_is_acknowledged_and_ignored(
    voice: Hub, client: httpx.AsyncClient
):
    await report(client, "CA-never-seen", CallStatus="completed", CallDuration="3")

    assert await count(voice, Interaction) == 0


def situation(**changes: Any) -> CallSituation:
    base = {
        "language": None,
        "assignee_id": 7,
        "assignee_presence": "online",
        "others_online": True,
        "queue": "key_accounts",
    }
    return CallSituation(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "rule", "target"),
    [
        ({}, "assignee_online", "agent-7"),
        ({"assignee_presence": "away"}, "someone_online", "queue:key_accounts"),
        ({"assignee_tried": True}, "someone_online", "queue:key_accounts"),
        ({"assignee_id": None, "queue": None}, "someone_online", "queue:pool"),
        ({"assignee_presence": "offline", "others_online": False}, "nobody_free", "voicemail"),
        ({"assignee_tried": True, "others_online": False}, "nobody_free", "voicemail"),
    ],
)
def test_the_call_plan_takes_the_first_rule_that_applies(
    changes: dict[str, Any], rule: str, target: str
):
    plan = plan_call(situation(**changes))

    assert (plan.rule, plan.target) == (rule, target)


@pytest.mark.parametrize(
    ("language", "spoken"),
    [("de", "de-DE"), ("de-AT", "de-DE"), ("DE", "de-DE"), ("en", "en-GB"), (None, "en-GB")],
)
def test_the_caller_hears_german_only_when_the_customer_speaks_it(
    language: str | None, spoken: str
):
    assert plan_call(situation(language=language)).language == spoken


async def test_presence_is_read_at_call_time_from_the_database(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    await an_a_customer(client, agent)
    async with voice.work() as work:
        (await work.session.get(Agent, agent.id)).presence = "online"

    answer = twiml(await call(client, "CA-db-presence", KNOWN_NUMBER))

    assert answer.find("Dial").findtext("Client") == f"agent-{agent.id}"
