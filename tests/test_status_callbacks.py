"""Twilio status callbacks reversed and twice, for SMS and calls (issue 11).

`tests/test_sms.py` and `tests/test_voice.py` prove that callbacks in any
order never move a message or a call backwards. What they leave open, and
these prove: the history gets each outcome once however the callbacks come
(reversed, repeated, or two of them at the same moment, as Twilio's retries
can), and a final state reported twice at once opens one callback, not two.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from channels.sms.sending import TwilioSmsSender
from hub.context import Hub
from hub.models import Conversation, Interaction
from hub.outbox import Message, enqueue
from tests.conftest import SignedIn
from tests.peers.twilio import TwilioApi, post_signed, status_callback
from tests.sms_steps import ANNA, PUBLIC_URL, anna, dispatch, outbox_row, twilio_settings
from tests.sms_steps import STATUS as SMS_STATUS
from tests.voice_steps import KNOWN_NUMBER, TOKEN, a_customer, call, call_meta, count, report


@pytest.fixture
def sms_hub(hub: Hub, twilio_api: TwilioApi) -> Hub:
    hub.settings = twilio_settings(hub.settings, twilio_api)
    return hub


@pytest.fixture
async def sender(sms_hub: Hub) -> AsyncIterator[TwilioSmsSender]:
    built = TwilioSmsSender.from_settings(sms_hub.settings)
    assert built is not None
    yield built
    await built.close()


@pytest.fixture
def voice(hub: Hub) -> Hub:
    hub.settings = hub.settings.model_copy(
        update={"twilio_auth_token": TOKEN, "public_url": PUBLIC_URL}
    )
    return hub


async def sent_sms_to_anna(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, sender: TwilioSmsSender, api: TwilioApi
) -> tuple[int, str]:
    """A service SMS to Anna, a customer, sent through the stand-in: its row id and SID."""
    customer_id = await anna(client, agent)
    message = Message(
        "callbacks", "sms", ANNA, "service", "Ihr Paket ist unterwegs.", customer_id=customer_id
    )
    async with hub.work() as work:
        row = await enqueue(work, message, hub.policy)
    await dispatch(hub, sender)
    (sent,) = api.messages
    return row.id, sent.sid


async def delivery_entries(hub: Hub, outbox_id: int) -> list[str]:
    async with hub.sessions() as session:
        entries = await session.scalars(
            select(Interaction).where(Interaction.kind == "delivery").order_by(Interaction.id)
        )
        return [entry.text for entry in entries if entry.meta.get("outbox_id") == outbox_id]


async def callback(client: httpx.AsyncClient, sid: str, status: str) -> int:
    fields = status_callback(sid, status, to=ANNA)
    answer = await post_signed(client, SMS_STATUS, fields, public_url=PUBLIC_URL)
    return answer.status_code


async def test_sms_callbacks_reversed_and_repeated_leave_delivered_and_one_history_entry(
    sms_hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    sender: TwilioSmsSender,
    twilio_api: TwilioApi,
):
    outbox_id, sid = await sent_sms_to_anna(sms_hub, client, agent, sender, twilio_api)

    answers = [
        await callback(client, sid, s) for s in ("delivered", "sent", "queued", "delivered", "sent")
    ]

    row = await outbox_row(sms_hub, outbox_id)
    entries = await delivery_entries(sms_hub, outbox_id)
    assert answers == [204] * 5
    assert (row.status, row.provider_status) == ("delivered", "delivered")
    assert [e for e in entries if e.endswith("delivered")] == [entries[-1]]
    assert [text for text, n in Counter(entries).items() if n > 1] == []


async def test_sms_callbacks_arriving_at_the_same_moment_record_delivered_once(
    sms_hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    sender: TwilioSmsSender,
    twilio_api: TwilioApi,
):
    outbox_id, sid = await sent_sms_to_anna(sms_hub, client, agent, sender, twilio_api)

    answers = await asyncio.gather(
        *(callback(client, sid, s) for s in ("delivered", "delivered", "sent", "delivered"))
    )

    row = await outbox_row(sms_hub, outbox_id)
    entries = await delivery_entries(sms_hub, outbox_id)
    assert all(answer in (204, 500, 503) for answer in answers)  # a retry would follow a 5xx
    assert (row.status, row.provider_status) == ("delivered", "delivered")
    assert len([e for e in entries if e.endswith("delivered")]) == 1, entries


async def test_call_callbacks_reversed_and_at_the_same_moment_open_one_callback(
    voice: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    customer_id = await a_customer(client, agent)
    await call(client, "CA-twice-1", KNOWN_NUMBER)

    await asyncio.gather(
        report(client, "CA-twice-1", CallStatus="no-answer"),
        report(client, "CA-twice-1", CallStatus="no-answer"),
        report(client, "CA-twice-1", CallStatus="ringing"),
    )
    await report(client, "CA-twice-1", CallStatus="in-progress")

    meta = await call_meta(voice, "CA-twice-1")
    callbacks = await count(
        voice,
        Conversation,
        Conversation.customer_id == customer_id,
        Conversation.thread_key == "callback:CA-twice-1",
    )
    missed = await count(voice, Interaction, Interaction.kind == "missed_call")
    calls = await count(voice, Interaction, Interaction.external_id == "CA-twice-1")
    assert (meta["status"], callbacks, missed, calls) == ("no-answer", 1, 1, 1)
