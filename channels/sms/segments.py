"""How many SMS segments a text costs, and in which encoding (3GPP TS 23.038 / 23.040).

A text that only uses the GSM 03.38 default alphabet and its extension table
goes out as GSM-7: 160 septets in one SMS; a longer one is split into parts
of 153 (each part gives 7 septets to the concatenation header). An extension
character (`€ [ ] { } \\ ^ ~ |` and form feed) is an escape plus a character,
two septets, and its pair is never split across two parts. Any other
character makes the whole text UCS-2: 70 UTF-16 code units in one SMS, parts
of 67, and a character outside the Basic Multilingual Plane (most emoji) is a
surrogate pair of two units that stays in one part.

`characters` is the number of Unicode code points. An empty text is no
segment. Twilio's "smart encoding" (curly quotes to straight ones, ...) is off
here: what is counted is what is sent.

`router` serves `POST /api/sms/segments` to agents, so the console can show the
cost of a reply while it is typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from hub.api.deps import current_agent
from hub.models import Agent

Encoding = Literal["GSM-7", "UCS-2"]

# The default alphabet (the escape 0x1B itself is not a character one can send).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

# Units one SMS holds, alone and as a part of a concatenated message.
LIMITS: dict[Encoding, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}
MAX_TEXT = 10_000


@dataclass(frozen=True, slots=True)
class SegmentCount:
    encoding: Encoding
    segments: int
    characters: int


def is_gsm7(text: str) -> bool:
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def unit_sizes(text: str, encoding: Encoding) -> list[int]:
    """What each character costs: septets in GSM-7, UTF-16 code units in UCS-2."""
    if encoding == "GSM-7":
        return [2 if char in GSM7_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def count_parts(sizes: list[int], single: int, part: int) -> int:
    """Parts needed when no character may straddle two parts."""
    if sum(sizes) <= single:
        return 1 if sizes else 0
    parts, used = 1, 0
    for size in sizes:
        if used + size > part:
            parts, used = parts + 1, 0
        used += size
    return parts


def count_segments(text: str) -> SegmentCount:
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    single, part = LIMITS[encoding]
    return SegmentCount(encoding, count_parts(unit_sizes(text, encoding), single, part), len(text))


class SegmentsIn(BaseModel):
    # Not the API's `Body`: that strips whitespace, and spaces cost septets too.
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_TEXT)


router = APIRouter(prefix="/api/sms", tags=["sms"])


@router.post("/segments")
async def segments(body: SegmentsIn, agent: Agent = Depends(current_agent)) -> dict[str, Any]:
    """The encoding and number of SMS segments the text would be sent as."""
    counted = count_segments(body.text)
    return {
        "encoding": counted.encoding,
        "segments": counted.segments,
        "characters": counted.characters,
    }
