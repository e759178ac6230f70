"""Low-level readers of a MIME message, shared by `parsing` and `reports`.

Text hygiene (valid Unicode, no NUL, no control characters on one line), raw
header values, message ids, addresses and part payloads. Nothing here raises on
garbage bytes: undecodable text falls back to cp1252, a malformed id or address
reads as absent. This module imports nothing else from the channel.
"""

from __future__ import annotations

import re
import unicodedata
from email.message import Message

_ID_CHARS = r"[\x21-\x3b\x3d\x3f-\x7e]"  # printable ASCII without < > @
_BRACKETED_ID = re.compile(rf"<\s*({_ID_CHARS}+@{_ID_CHARS}+)\s*>")
_BARE_ID = re.compile(rf"^\s*({_ID_CHARS}+@{_ID_CHARS}+)\s*$")


# --- text hygiene -----------------------------------------------------------


def scrub(value: str) -> str:
    """Valid Unicode without NUL: surrogate escapes re-decoded (UTF-8, else cp1252)."""
    if not any("\ud800" <= char <= "\udfff" for char in value):
        return value.replace("\x00", "")
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that are not escapes of bytes
        raw = value.encode("utf-8", "replace")
    return decode_bytes(raw).replace("\x00", "")


def decode_bytes(raw: bytes) -> str:
    return decode_fallback(raw)[0]


def decode_fallback(raw: bytes) -> tuple[str, str]:
    """(text, codec used): UTF-8 when the bytes are UTF-8, else cp1252 (never fails)."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace"), "cp1252"


def is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp")


def one_line(value: str) -> str:
    """A header value for display: every control character (CR/LF too) becomes a space."""
    return "".join(" " if is_control(char) else char for char in scrub(value)).strip()


# --- raw headers, ids, addresses --------------------------------------------


def raw_header(msg: Message, name: str) -> str | None:
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return str(value)
    return None


def raw_headers(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    return [scrub(str(value)) for key, value in msg.raw_items() if key.lower() == wanted]


def normalise_ids(value: str) -> tuple[str, ...]:
    """The `<left@right>` ids in a header value, in order, deduplicated; garbage ignored."""
    found = [f"<{match}>" for match in _BRACKETED_ID.findall(value)]
    if not found and (bare := _BARE_ID.match(value)):
        found = [f"<{bare.group(1)}>"]
    return tuple(dict.fromkeys(found))


def header_ids(msg: Message, name: str) -> tuple[str, ...]:
    values = raw_headers(msg, name)
    return tuple(dict.fromkeys(ref for value in values for ref in normalise_ids(value)))


def first_id(msg: Message, name: str) -> str | None:
    ids = header_ids(msg, name)
    return ids[0] if ids else None


def normalise_address(spec: str) -> str | None:
    spec = spec.strip().strip("<>").lower()
    local, at, domain = spec.rpartition("@")
    return spec if at and local and domain and " " not in spec else None


# --- part payloads ----------------------------------------------------------


def payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    inner = part.get_payload()
    if isinstance(inner, list):  # message/rfc822, message/delivery-status
        return b"".join(sub.as_bytes() for sub in inner if isinstance(sub, Message))
    return scrub(str(inner or "")).encode("utf-8")
