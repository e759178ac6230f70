"""The live chat's wire protocol: JSON text frames on `WS /channels/chat/ws`.

Every frame is one JSON object with a `type`; text frames only, each at most
`MAX_FRAME_BYTES` of UTF-8. Fields not listed are ignored (room to grow).

    client                                                   server
      │ hello {token?, log_id?, last_seq?, name?, email?, phone?}
      │ ──────────────────────────────────────────────────────> │ new session, or resume by token
      │ <────────────────────────────────────────────────────── │ welcome {token, session, log_id,
      │                                                         │          last_seq, agents_online}
      │ <────────────────────────────────────────────────────── │ every logged frame seq > last_seq
      │ message {client_id, text}                               │
      │ ──────────────────────────────────────────────────────> │ accept_inbound, committed, THEN
      │ <────────────────────────────────────────────────────── │ ack {client_id, seq}        logged
      │ <────────────────────────────────────────────────────── │ message {seq, from: "agent",
      │                                                         │          text, at}          logged
      │ typing {}  ──────────────> (event `typing.started`)     │                     never stored
      │ <────────────────────────────────────────────────────── │ typing {from: "agent"}
      │ <──────────────────────── ping {} ───────────────────── │ every ping_seconds
      │ pong {} ──────────────────────────────────────────────> │ any frame proves life
      │ ping {}  ─> pong {}                                     │
      │ leave_message {client_id, email, text, name?}           │
      │ ──────────────────────────────────────────────────────> │ stored as an e-mail, THEN
      │ <────────────────────────────────────────────────────── │ ack {client_id, seq}        logged

Sessions. `hello` must come first; without a `token` it opens a new session.
`welcome` carries the session's token, signed afresh each time: keep it, with
`log_id` and `last_seq`, in sessionStorage. The pre-chat form's `name`,
`email` and `phone` count only on a new session; they travel inside the token.
With `email` (else `phone`), the session's chat id is attached to the customer
owning that address (or to a new prospect with it) before the first message is
stored, so the chat joins that customer's history; the claim is not verified,
and each stored message says so in its metadata (`contact_verified: false`).
A token that is forged, expired or malformed closes the socket with 4401.

Sequence. Each session numbers the frames it logs (`ack` and agent `message`)
1, 2, 3, ... The client keeps the highest seq it has processed (`last_seq`)
and the log's id (`welcome.log_id`), ignores any frame whose seq is not above
`last_seq`, and sends both in `hello` when it reconnects: the server answers
`welcome`, then exactly the logged frames after `last_seq`, in order, then
live frames. `welcome.last_seq` is the session's newest seq. The log is kept
in the database, so a restart loses nothing and `log_id` stays the same for the
session; a `log_id` other than the client's means the log was begun again (or
the client's is of an older server): the server replays all it has, and the
client sets its `last_seq` to 0 before reading on. When frames
after `last_seq` are no longer kept, an `error` `replay_gap` comes before the
replay.

Messages. `client_id` (1-64 of `A-Z a-z 0-9 _ . : -`, unique per session
across `message` and `leave_message`) is the idempotency key: the message is
stored as (`chat`, `<session>:<client_id>`), and acknowledged only once
committed (principle 3). The client keeps every unacknowledged message and
sends it again, same `client_id`, after each `welcome`; a message already
stored is not stored again and is acknowledged with its first seq. A
`not_stored` error means the hub could not store it now: send it again later.
`leave_message` (offered when `welcome.agents_online` is false) is stored as
an e-mail from `email`, (`email`, `chat:<session>:<client_id>`), and answered
by e-mail.

Errors are `{"type": "error", "code": ..., "message": ...}`; the socket stays
open unless a close follows:

    code              when
    invalid_json      the frame is not a JSON object
    frame_too_large   more than MAX_FRAME_BYTES
    binary_frame      a binary frame
    unknown_type      `type` missing or not one of the client types above
    invalid_frame     a field is missing, of the wrong type or too long, or the hub
                      refused it (a leave_message e-mail that is not an address)
    hello_required    a frame other than hello/ping/pong before hello
    unexpected_hello  a second hello on the same socket
    invalid_contact   the pre-chat e-mail or phone is not valid; the session goes on
                      without it
    not_stored        the hub could not store the message now; send it again later
    replay_gap        some frames after last_seq are no longer kept
    rate_limited      too many frames; a close 4429 follows
    slow_reader       (close reason only) the client did not read its frames

Close codes:

    4401  token forged, expired or malformed: start a new session (hello without token)
    4408  no hello within hello_seconds, or nothing heard for idle_seconds
    4429  more than rate_frames frames within rate_seconds on this socket
    1013  the server cannot use this socket now (slow reader, chat not wired): reconnect
    1012  the server restarts (uvicorn): reconnect
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_FRAME_BYTES = 16 * 1024
MAX_TEXT = 4000
MAX_TOKEN = 1000
MAX_NAME = 200
MAX_EMAIL = 254
MAX_PHONE = 40
CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

CLOSE_TOKEN = 4401
CLOSE_SILENT = 4408
CLOSE_FLOOD = 4429
CLOSE_TRY_AGAIN = 1013


class FrameError(Exception):
    """A frame the server answers with an error frame; the socket carries on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CloseError(Exception):
    """A frame or state that ends the socket with a close code."""

    def __init__(self, code: int, reason: str, error: FrameError | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.error = error


@dataclass(frozen=True, slots=True)
class Hello:
    token: str | None = None
    log_id: str | None = None
    last_seq: int = 0
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    client_id: str
    text: str


@dataclass(frozen=True, slots=True)
class LeaveMessage:
    client_id: str
    email: str
    text: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Typing:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    pass


ClientFrame = Hello | ChatMessage | LeaveMessage | Typing | Ping | Pong


def parse_frame(raw: str) -> ClientFrame:
    """One client frame from its text; raises `FrameError` with the code to answer."""
    if len(raw.encode()) > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large", f"a frame is at most {MAX_FRAME_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise FrameError("invalid_json", "a frame is one JSON object") from None
    if not isinstance(body, dict):
        raise FrameError("invalid_json", "a frame is one JSON object")
    kind = body.get("type")
    parser = PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise FrameError("unknown_type", f"unknown frame type {str(body.get('type'))[:40]!r}")
    return parser(body)


def _optional_text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise FrameError("invalid_frame", f"{name} is a string of at most {limit} characters")
    if not is_storable(value):
        raise FrameError("invalid_frame", f"{name} holds NUL or a lone surrogate")
    return value.strip() or None


def is_storable(text: str) -> bool:
    """No NUL (PostgreSQL refuses it) and no lone surrogate (JSON escapes allow one)."""
    return "\x00" not in text and not any("\ud800" <= char <= "\udfff" for char in text)


def _required_text(body: dict[str, Any], name: str, limit: int) -> str:
    value = _optional_text(body, name, limit)
    if value is None:
        raise FrameError("invalid_frame", f"{name} is required")
    return value


def _client_id(body: dict[str, Any]) -> str:
    value = body.get("client_id")
    if not isinstance(value, str) or not CLIENT_ID.fullmatch(value):
        raise FrameError("invalid_frame", "client_id is 1 to 64 of A-Z a-z 0-9 _ . : -")
    return value


def _last_seq(body: dict[str, Any]) -> int:
    value = body.get("last_seq", 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FrameError("invalid_frame", "last_seq is a whole number, 0 or more")
    return value


def _hello(body: dict[str, Any]) -> Hello:
    return Hello(
        token=_optional_text(body, "token", MAX_TOKEN),
        log_id=_optional_text(body, "log_id", MAX_NAME),
        last_seq=_last_seq(body),
        name=_optional_text(body, "name", MAX_NAME),
        email=_optional_text(body, "email", MAX_EMAIL),
        phone=_optional_text(body, "phone", MAX_PHONE),
    )


def _message(body: dict[str, Any]) -> ChatMessage:
    return ChatMessage(client_id=_client_id(body), text=_required_text(body, "text", MAX_TEXT))


def _leave_message(body: dict[str, Any]) -> LeaveMessage:
    return LeaveMessage(
        client_id=_client_id(body),
        email=_required_text(body, "email", MAX_EMAIL),
        text=_required_text(body, "text", MAX_TEXT),
        name=_optional_text(body, "name", MAX_NAME),
    )


PARSERS = {
    "hello": _hello,
    "message": _message,
    "leave_message": _leave_message,
    "typing": lambda _body: Typing(),
    "ping": lambda _body: Ping(),
    "pong": lambda _body: Pong(),
}


def render_welcome(
    token: str, session: str, log_id: str, last_seq: int, agents_online: bool
) -> dict[str, Any]:
    return {
        "type": "welcome",
        "token": token,
        "session": session,
        "log_id": log_id,
        "last_seq": last_seq,
        "agents_online": agents_online,
    }


def render_ack(client_id: str) -> dict[str, Any]:
    """An ack without its seq; the session log stamps it."""
    return {"type": "ack", "client_id": client_id}


def render_agent_message(text: str) -> dict[str, Any]:
    """An agent's message without its seq; the session log stamps it."""
    return {"type": "message", "from": "agent", "text": text, "at": datetime.now(UTC).isoformat()}


def render_error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


AGENT_TYPING: dict[str, Any] = {"type": "typing", "from": "agent"}
PING: dict[str, Any] = {"type": "ping"}
PONG: dict[str, Any] = {"type": "pong"}
