"""Inputs the fuzz targets (`fuzz/`) found the public edges mishandling, kept as regressions.

Each was a crash or a value the database refuses: a chat frame whose `type`
is an object (TypeError in the parser), chat text with NUL or a lone
surrogate (the message could never be stored, and the client was told to
send it again forever), a web form JSON body with a lone surrogate (500 on
storing it) or nested past Python's recursion limit (RecursionError, a 500),
a multipart attachment whose content type holds NUL (a 500 on storing it);
behind Twilio's signature, a call status callback whose duration is "4²"
(`isdigit` passes it, `int` refuses it) or whose timestamp overflows datetime.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import select
from starlette.datastructures import FormData

from channels.chat.protocol import FrameError, parse_frame
from channels.voice.webhooks import parse_status_report
from channels.webform.tokens import sign_form_token
from hub.context import Hub
from hub.models import Attachment, Interaction

FORM = "/channels/webform"
JSON = {"Content-Type": "application/json"}


def test_a_chat_frame_whose_type_is_not_a_string_is_an_unknown_type_error():
    with pytest.raises(FrameError) as refused:
        parse_frame(json.dumps({"type": {"type": "hello"}}))

    assert refused.value.code == "unknown_type"


@pytest.mark.parametrize("text", ["Hallo\x00", "Hallo \ud800"], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message", "client_id": "c1"},
        {"type": "leave_message", "client_id": "c1", "email": "anna@example.com"},
    ],
    ids=["message", "leave_message"],
)
def test_chat_text_the_database_cannot_store_is_an_invalid_frame(frame: dict, text: str):
    with pytest.raises(FrameError) as refused:
        parse_frame(json.dumps({**frame, "text": text}))

    assert refused.value.code == "invalid_frame"


async def test_a_web_form_body_nested_past_the_recursion_limit_is_refused_as_unreadable(
    client: httpx.AsyncClient,
):
    answer = await client.post(FORM, content=b"[" * 100_000, headers=JSON)

    assert answer.status_code == 400
    assert answer.json()["reason"] == "unreadable"


async def test_a_lone_surrogate_in_a_web_form_is_stored_as_a_replacement_character(
    client: httpx.AsyncClient, hub: Hub
):
    body = {"name": "Anna \ud800", "email": "anna@example.com", "message": "Hallo \udfff!"}

    answer = await client.post(FORM, content=json.dumps(body).encode(), headers=JSON)

    assert answer.status_code == 201, answer.text
    async with hub.sessions() as session:
        stored = (await session.scalars(select(Interaction))).one()
    assert stored.text == "Hallo \ufffd!"


async def test_a_web_form_attachment_with_nul_in_its_content_type_is_stored_without_it(
    client: httpx.AsyncClient, hub: Hub
):
    token = sign_form_token(hub.settings.secret_key or "", time.time() - 10)
    fields = {"name": "Anna", "email": "anna@example.com", "message": "Anbei", "form_token": token}
    files = {"attachments": ("rechnung.txt", b"Rechnung", "te\x00xt/plain")}

    answer = await client.post(FORM, data=fields, files=files)

    assert answer.status_code == 303, answer.text
    async with hub.sessions() as session:
        stored = list(await session.scalars(select(Attachment)))
    assert [a.content_type for a in stored] == ["text/plain"]


@pytest.mark.parametrize(
    "timestamp",
    [
        "Fri\x1c 04 Dec 2026 13:00:00 28250099999999999999999999999999999",
        "Fri, 04 Dec 202622222222222222222222222222222 13:00\n00",
    ],
    ids=["zone", "year"],
)
def test_a_call_status_report_with_an_odd_duration_or_timestamp_is_read_not_a_crash(
    timestamp: str,
):
    form = FormData([("CallStatus", "completed"), ("CallDuration", "4²"), ("Timestamp", timestamp)])

    report = parse_status_report(form)

    assert (report.status, report.duration, report.at.tzinfo is not None) == (
        "completed",
        None,
        True,
    )
