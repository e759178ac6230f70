"""SMS segments: GSM-7 septets or UTF-16 units, the concatenation limits, and the endpoint
that counts them for the console."""

from __future__ import annotations

import httpx
import pytest

from channels.sms.segments import count_segments
from hub.app import create_app
from hub.context import Hub
from tests.conftest import SignedIn


@pytest.mark.parametrize(
    ("text", "encoding", "parts", "characters"),
    [
        ("", "GSM-7", 0, 0),
        ("Grüße aus Köln, Ihr Paket ist da.", "GSM-7", 1, 33),
        ("a" * 160, "GSM-7", 1, 160),
        ("a" * 161, "GSM-7", 2, 161),
        ("a" * 306, "GSM-7", 2, 306),
        ("a" * 307, "GSM-7", 3, 307),
        ("€" * 80, "GSM-7", 1, 80),  # 160 septets: an extension character counts twice
        ("€" * 81, "GSM-7", 2, 81),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 3, 305),  # the € never straddles two parts
        ("Привет", "UCS-2", 1, 6),
        ("ж" * 70, "UCS-2", 1, 70),
        ("ж" * 71, "UCS-2", 2, 71),
        ("Danke 😀", "UCS-2", 1, 7),
        ("😀" * 35, "UCS-2", 1, 35),  # 70 UTF-16 units
        ("😀" * 67, "UCS-2", 3, 67),  # 134 units, but a surrogate pair is never split
    ],
)
def test_segments_count_septets_or_utf16_units_with_the_concatenation_limits(
    text: str, encoding: str, parts: int, characters: int
):
    counted = count_segments(text)

    assert (counted.encoding, counted.segments, counted.characters) == (encoding, parts, characters)


async def test_the_segment_endpoint_answers_agents_only(hub: Hub, agent: SignedIn):
    transport = httpx.ASGITransport(app=create_app(hub.settings, hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        stranger = await http.post("/api/sms/segments", json={"text": "Hallo"})
        answer = await http.post(
            "/api/sms/segments", headers=agent.headers, json={"text": "Hallo 😀"}
        )

    assert stranger.status_code == 401
    assert answer.json() == {"encoding": "UCS-2", "segments": 1, "characters": 7}
