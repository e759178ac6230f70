"""Inputs the fuzz targets (`fuzz/`) found the public edges mishandling, kept as regressions.

Each was a crash or a value the database refuses: a chat frame whose `type`
is an object (TypeError in the parser), chat text with NUL or a lone
surrogate (the message could never be stored, and the client was told to
send it again forever), a web form JSON body with a lone surrogate (500 on
storing it) or nested past Python's recursion limit (RecursionError, a 500).
"""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from channels.chat.protocol import FrameError, parse_frame
from hub.context import Hub
from hub.models import Interaction

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
