"""From Twilio's incoming-message webhook to one `hub.Inbound`.

The fields used (Twilio's messaging webhook request):

    MessageSid      the idempotency key (the external id); a retry carries the
                    same one. Without it, the `I-Twilio-Idempotency-Token` header
    From, To        the customer's number and ours
    Body            the text ("" for a picture-only MMS, which is fine; absent is not)
    NumMedia, MediaUrl{N}, MediaContentType{N}
                    MMS media: kept as links in the metadata (`media`), not fetched
    NumSegments     kept in the metadata

There is no thread key: a text joins the customer's open SMS conversation.

A `From` that phonenumbers cannot read as a possible number (an alphanumeric
sender id, a short code, garbage) is stored, never refused: as the chat
identity `sms:<raw>` (a phone identity is always E.164), flagged
`unparseable_number` with the raw value in `from`. No keyword acts for it, and
no reply can reach it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from channels.sms.keywords import KeywordRule, find_keyword
from hub.errors import InvalidInputError
from hub.identity import MAX_CHAT_ID, normalise_phone
from hub.values import Inbound

MAX_MEDIA = 10  # Twilio delivers at most ten media items with one message
UNPARSEABLE_PREFIX = "sms:"


class IncompleteWebhookError(Exception):
    """The webhook lacks a field the hub cannot do without."""


@dataclass(frozen=True, slots=True)
class IncomingSms:
    inbound: Inbound
    message_sid: str
    number: str | None  # E.164; None when the sender's number could not be read
    keyword: KeywordRule | None


def field(form: Mapping[str, Any], name: str) -> str | None:
    """A text field of the form (an uploaded file is no text)."""
    value = form.get(name)
    return value if isinstance(value, str) else None


def parse_incoming(
    form: Mapping[str, Any], idempotency_token: str | None, region: str
) -> IncomingSms:
    """The inbound a webhook carries; raises IncompleteWebhookError without From or Body."""
    raw_from, body = (field(form, "From") or "").strip(), field(form, "Body")
    if not raw_from or body is None:
        raise IncompleteWebhookError("an incoming message needs From and Body")
    sid = field(form, "MessageSid") or idempotency_token
    if not sid:
        raise IncompleteWebhookError("an incoming message needs a MessageSid")
    number = find_number(raw_from, region)
    keyword = find_keyword(body) if number is not None else None
    inbound = Inbound(
        channel="sms",
        sender_kind="phone" if number is not None else "chat",
        sender=number or (UNPARSEABLE_PREFIX + raw_from)[:MAX_CHAT_ID],
        external_id=sid,
        text=body,
        metadata=_metadata(form, raw_from, number, keyword),
    )
    return IncomingSms(inbound, sid, number, keyword)


def find_number(raw: str, region: str) -> str | None:
    """The number in E.164, or None when it is not a possible phone number."""
    try:
        return normalise_phone(raw, region)
    except InvalidInputError:
        return None


def _metadata(
    form: Mapping[str, Any], raw_from: str, number: str | None, keyword: KeywordRule | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"to": field(form, "To"), "num_segments": field(form, "NumSegments")}
    media = parse_media(form)
    if media:
        meta.update(num_media=len(media), media=media)
    if number is None:
        meta["unparseable_number"], meta["from"] = True, raw_from
    if keyword is not None:
        meta["keyword"] = keyword.name
    return {name: value for name, value in meta.items() if value is not None}


def parse_media(form: Mapping[str, Any]) -> list[dict[str, str | None]]:
    """The MMS media links, in Twilio's order (MediaUrl0, MediaUrl1, ...)."""
    try:
        count = min(max(int(field(form, "NumMedia") or 0), 0), MAX_MEDIA)
    except ValueError:
        count = 0
    media = []
    for index in range(count):
        url = field(form, f"MediaUrl{index}")
        if url:
            media.append({"url": url, "content_type": field(form, f"MediaContentType{index}")})
    return media
