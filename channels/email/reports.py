"""Bounces: the delivery status notification (RFC 3464) in a multipart/report.

Only a `multipart/report; report-type=delivery-status` is read as a bounce;
anything else gives None. Each per-recipient block becomes a `BounceRecipient`
with a bare lower-case address and a status `class.subject.detail` (from
Status:, else 5.0.0/4.0.0 from Action: failed/delayed); the original
Message-ID comes from the returned message or its headers. Like the rest of
the parse it never trusts the report: a block without an address is skipped.
"""

from __future__ import annotations

import base64
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import Parser

from channels.email.mime import (
    decode_bytes,
    first_id,
    normalise_address,
    one_line,
    payload_bytes,
    raw_header,
)

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class BounceRecipient:
    final_recipient: str
    action: str
    status: str
    diagnostic: str | None = None

    @property
    def is_permanent(self) -> bool:
        return self.status.startswith("5")


@dataclass(frozen=True, slots=True)
class Bounce:
    original_message_id: str | None
    recipients: tuple[BounceRecipient, ...]


def find_bounce(msg: Message, warnings: list[str]) -> Bounce | None:
    """The delivery status notification in a multipart/report, or None for other mail."""
    if msg.get_content_type() != "multipart/report":
        return None
    if str(msg.get_param("report-type", "") or "").lower() != "delivery-status":
        return None
    parts = [part for _, part in _report_parts(msg)]
    status = next((p for p in parts if p.get_content_type() == "message/delivery-status"), None)
    recipients = _bounce_recipients(status) if status is not None else ()
    if not recipients:
        warnings.append("delivery status: no recipients found")
        return None
    return Bounce(original_message_id=_original_message_id(parts), recipients=recipients)


def _report_parts(msg: Message) -> Iterator[tuple[int, Message]]:
    payload = msg.get_payload()
    return enumerate(payload if isinstance(payload, list) else [])


def _status_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status part: per message, then per recipient."""
    payload = part.get_payload()
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if isinstance(payload, list) and encoding in ("base64", "quoted-printable"):
        # The email package splits such a part into blocks before decoding it.
        payload = "\n\n".join(_block_source(block) for block in payload)
    if isinstance(payload, list) and all(isinstance(block, Message) for block in payload):
        return payload
    text = _decode_transfer(str(payload), encoding).replace("\r\n", "\n")
    parser = Parser(policy=policy.compat32)
    return [parser.parsestr(block, headersonly=True) for block in re.split(r"\n\s*\n", text)]


def _block_source(block: Message) -> str:
    lines = [f"{key}: {value}" for key, value in block.raw_items()]
    return "\n".join([*lines, str(block.get_payload() or "")])


def _decode_transfer(text: str, encoding: str) -> str:
    if encoding == "base64":
        return decode_bytes(base64.b64decode("".join(text.split()) + "==="))
    if encoding == "quoted-printable":
        return decode_bytes(quopri.decodestring(text.encode("utf-8", "replace")))
    return text


def _field(block: Message, name: str) -> str:
    return " ".join(one_line(raw_header(block, name) or "").split())  # unfolded


def _bounce_recipients(part: Message) -> tuple[BounceRecipient, ...]:
    found = (_bounce_recipient(block) for block in _status_blocks(part))
    return tuple(recipient for recipient in found if recipient is not None)


def _bounce_recipient(block: Message) -> BounceRecipient | None:
    final = _field(block, "Final-Recipient") or _field(block, "Original-Recipient")
    address = normalise_address(final.partition(";")[2] if ";" in final else final)
    if address is None:
        return None
    action = _field(block, "Action").lower()
    status = _STATUS.search(_field(block, "Status"))
    fallback = {"failed": "5.0.0", "delayed": "4.0.0"}.get(action, "")
    return BounceRecipient(
        final_recipient=address,
        action=action,
        status=status.group(0) if status else fallback,
        diagnostic=_field(block, "Diagnostic-Code") or None,
    )


def _original_message_id(parts: list[Message]) -> str | None:
    for part in parts:
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner else None
        elif kind == "text/rfc822-headers":
            text = decode_bytes(payload_bytes(part))
            headers = Parser(policy=policy.compat32).parsestr(text, headersonly=True)
        else:
            continue
        if isinstance(headers, Message) and (found := first_id(headers, "Message-ID")):
            return found
    return None
