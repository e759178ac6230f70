"""Chat sessions: signed session tokens, and each session's numbered log of frames.

A session is named by a random id, which is also the customer's chat id (the
identity of kind `chat` that ingest threads by and `hub.replies` answers to;
the session id is also the conversation's thread key). Its token is the claim
`{session, name, email, phone}` signed with itsdangerous under the hub's
secret key; nothing else proves a session, so a forged or expired token is
refused (`InvalidTokenError`, close 4401). Every welcome carries a freshly
signed token, so `token_max_age` counts from the last (re)connection.

The log (`hub.chat_log`, in the database) gives each frame worth replaying
(`ack`, agent `message`) the next seq of its session, so a restart loses
nothing; its `log_id` is constant per session (it names the session's row, so
a client holding seqs of a log begun again is told to start again from 0). A
frame appended through the registry is offered, once committed, to every
socket of this process attached to the session; the registry keeps in memory
only those sockets (and a session's conversation id, for typing events).
Attaching (with the client's `last_seq`) and appending take the session's
lock, so in this process no frame falls between the replay and the live
stream, none comes twice, and frames are offered in seq order.

    invariants   seq = 1, 2, 3, ... per session, no gaps, never reused
                 one ack per client id: a message sent again gets its first ack
                 one agent message per outbox idempotency key

UNFINISHED: with several hub processes a reply dispatched in one is logged but
reaches a socket held by another only when that customer reconnects; a bus
event telling every process that a frame was appended would push it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from itsdangerous import BadData, URLSafeTimedSerializer

from hub.chat_log import append_frame, frames_after, open_session
from hub.context import Hub

TOKEN_SALT = "omnihub.chat.session"  # noqa: S105 (a salt, not a secret)


class InvalidTokenError(Exception):
    """The session token is forged, expired or malformed."""


@dataclass(frozen=True, slots=True)
class ChatConfig:
    """The chat's limits; tests shorten the timers."""

    ping_seconds: float = 20.0
    idle_seconds: float = 60.0
    hello_seconds: float = 10.0
    rate_frames: int = 20
    rate_seconds: float = 10.0
    typing_seconds: float = 2.0
    max_sessions: int = 10_000
    send_queue: int = 256
    token_max_age: int = 24 * 3600


@dataclass(frozen=True, slots=True)
class SessionClaim:
    """What a session token says: the session, and the pre-chat form's answers."""

    session: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None

    @property
    def chat_id(self) -> str:
        return self.session

    @property
    def has_contact(self) -> bool:
        return bool(self.email or self.phone)


def new_claim(name: str | None, email: str | None, phone: str | None) -> SessionClaim:
    return SessionClaim(secrets.token_urlsafe(16), name, email, phone)


def _signer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)


def issue_token(secret_key: str, claim: SessionClaim) -> str:
    body = {"s": claim.session, "n": claim.name, "e": claim.email, "p": claim.phone}
    return _signer(secret_key).dumps(body)


def check_token(secret_key: str, token: str, max_age: int) -> SessionClaim:
    """The claim a token signs; raises `InvalidTokenError` (forged, expired, malformed)."""
    try:
        body = _signer(secret_key).loads(token, max_age=max_age)
    except BadData:
        raise InvalidTokenError("the session token is forged or expired") from None
    if not isinstance(body, dict) or not isinstance(body.get("s"), str):
        raise InvalidTokenError("the session token is malformed")
    return SessionClaim(body["s"], body.get("n"), body.get("e"), body.get("p"))


class Listener(Protocol):
    """A socket attached to a session: takes frames without waiting."""

    def offer(self, frame: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class Replay:
    """What a (re)attaching socket gets: the log's id and newest seq, what it missed, a gap."""

    log_id: str
    head: int
    frames: list[dict[str, Any]]
    gap: bool


@dataclass
class LiveSession:
    """What this process holds of a session: the sockets attached to it, and its lock."""

    listeners: set[Listener] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0

    def offer(self, frame: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener.offer(frame)


def log_id_of(created_at: datetime) -> str:
    """The log's id: constant while the session's row lives, new if it is begun again."""
    return created_at.strftime("%Y%m%d%H%M%S%f")


class ChatRegistry:
    """The sockets this process holds, per session; the log itself is `hub.chat_log`.

    The hub is bound by `create_app` (the registry is built with the senders, before it).
    """

    def __init__(self, config: ChatConfig | None = None, hub: Hub | None = None) -> None:
        self.config = config or ChatConfig()
        self.hub = hub
        self._live: dict[str, LiveSession] = {}
        self._conversations: OrderedDict[str, int] = OrderedDict()

    def bind(self, hub: Hub) -> None:
        self.hub = hub

    def _hub(self) -> Hub:
        if self.hub is None:
            raise RuntimeError("the chat registry is not bound to a hub")
        return self.hub

    def log(self, session: str) -> LiveSession:
        """The session's live state in this process (its sockets); empty if none."""
        return self._live.get(session) or LiveSession()

    @asynccontextmanager
    async def _locked(self, session: str) -> AsyncIterator[LiveSession]:
        live = self._live.setdefault(session, LiveSession())
        live.users += 1
        try:
            async with live.lock:
                yield live
        finally:
            live.users -= 1
            self._forget_if_idle(session, live)

    def _forget_if_idle(self, session: str, live: LiveSession) -> None:
        if not live.listeners and not live.users and self._live.get(session) is live:
            del self._live[session]

    async def record_ack(
        self, session: str, client_id: str, frame: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """The ack of a stored message, logged once per client id; and whether it is new."""
        async with self._locked(session) as live:
            logged = await append_frame(self._hub(), session, frame, client_id=client_id)
            if logged.is_new:
                live.offer(logged.frame)
        return logged.frame, logged.is_new

    async def record_agent_message(self, session: str, key: str, frame: dict[str, Any]) -> int:
        """Log an agent's message once per outbox key (a re-sent row is not shown twice)."""
        async with self._locked(session) as live:
            logged = await append_frame(self._hub(), session, frame, outbox_key=key)
            if logged.is_new:
                live.offer(logged.frame)
        return logged.seq

    async def attach(
        self, session: str, listener: Listener, log_id: str | None, last_seq: int
    ) -> Replay:
        """Attach a socket and return what it missed; nothing is offered to it in between.

        The caller offers the replay before it awaits anything: a frame appended
        meanwhile waits for the lock, and is offered after the replay.
        """
        hub = self._hub()
        async with self._locked(session) as live:
            current = log_id_of(await open_session(hub, session))
            after = last_seq if log_id == current else 0
            tail = await frames_after(hub, session, after)
            if after > tail.head:  # seqs this log never gave: it was begun again
                after, tail = 0, await frames_after(hub, session, 0)
            live.listeners.add(listener)
        oldest = tail.frames[0]["seq"] if tail.frames else tail.head + 1
        return Replay(current, tail.head, tail.frames, gap=oldest > after + 1)

    def detach(self, session: str, listener: Listener) -> None:
        live = self._live.get(session)
        if live is not None:
            live.listeners.discard(listener)
            self._forget_if_idle(session, live)

    def push(self, session: str, frame: dict[str, Any]) -> int:
        """Offer an unlogged frame (typing) to the session's sockets; how many got it."""
        live = self._live.get(session)
        listeners = list(live.listeners) if live else []
        for listener in listeners:
            listener.offer(frame)
        return len(listeners)

    def remember_conversation(self, session: str, conversation_id: int | None) -> None:
        if conversation_id is None:
            return
        self._conversations[session] = conversation_id
        self._conversations.move_to_end(session)
        while len(self._conversations) > self.config.max_sessions:
            self._conversations.popitem(last=False)

    def conversation_of(self, session: str) -> int | None:
        return self._conversations.get(session)
