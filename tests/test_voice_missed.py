"""Calls that nobody took: one callback conversation for a missed call from a known
customer, an unanswered dial falling back to the queue or voicemail, a caller the queue
lets go, and the call plan."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from channels.voice.call_plan import CallSituation, plan_call
from hub.context import Hub
from hub.models import Agent, Conversation, Interaction
from tests.conftest import MakeAgent, SignedIn
from tests.voice_steps import (
    KNOWN_NUMBER,
    PUBLIC_URL,
    UNKNOWN_NUMBER,
    a_customer,
    an_a_customer,
    call,
    call_meta,
    count,
    go_online,
    post_signed,
    report,
    twiml,
)


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
