"""Chat sessions: signed session tokens, and each session's numbered log of frames.

A session is named by a random id, which is also the customer's chat id (the
identity of kind `chat` that ingest threads by and `hub.replies` answers to;
the session id is also the conversation's thread key). Its token is the claim
`{session, name, email, phone}` signed with itsdangerous under the hub's
secret key; nothing else proves a session, so a forged or expired token is
refused (`InvalidTokenError`, close 4401). Every welcome carries a freshly
signed token, so `token_max_age` counts from the last (re)connection.

The log gives each frame worth replaying (`ack`, agent `message`) the next
seq of its session and keeps the newest `keep_frames` of them; its `log_id`
names this run of the log, so a client holding seqs of a lost log (a restart)
is told to start again from 0 instead of skipping new frames. A frame
appended is offered at once to every socket attached to the session. Attaching
(with the client's `last_seq`) and appending are synchronous, so on the one
event loop no frame falls between the replay and the live stream, and none
comes twice.

    invariants   seq = 1, 2, 3, ... per session, no gaps, never reused (within a process)
                 one ack per client id: a message sent again gets its first ack
                 one agent message per outbox idempotency key

UNFINISHED: the log lives in this process's memory (bounded: `max_sessions`
sessions, least recently used without a socket go first; `keep_frames` frames
each). A restart loses it, and with several hub processes a reply dispatched
in one never reaches a socket held by another. It belongs in a `chat_frames`
table (see the report), with a bus event telling every process that a frame
was appended.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from itsdangerous import BadData, URLSafeTimedSerializer

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
    keep_frames: int = 500
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
class SessionLog:
    """One session's frames; `log_id` changes when the log is lost and begun again."""

    keep: int
    log_id: str = field(default_factory=lambda: secrets.token_urlsafe(6))
    head: int = 0
    frames: deque[dict[str, Any]] = field(default_factory=deque)
    acks: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    sent: OrderedDict[str, int] = field(default_factory=OrderedDict)
    listeners: set[Listener] = field(default_factory=set)
    conversation_id: int | None = None

    def append(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Stamp the next seq on a frame, keep it, and offer it to every attached socket."""
        self.head += 1
        stamped = {**frame, "seq": self.head}
        self.frames.append(stamped)
        while len(self.frames) > self.keep:
            self.frames.popleft()
        for listener in list(self.listeners):
            listener.offer(stamped)
        return stamped

    def since(self, log_id: str | None, last_seq: int) -> Replay:
        """The frames after `last_seq` of this log; of another (a lost) log: all kept."""
        after = last_seq if log_id == self.log_id and last_seq <= self.head else 0
        frames = [frame for frame in self.frames if frame["seq"] > after]
        oldest = frames[0]["seq"] if frames else self.head + 1
        return Replay(self.log_id, self.head, frames, gap=oldest > after + 1)


def _remember(table: OrderedDict[str, Any], key: str, value: Any, keep: int) -> None:
    table[key] = value
    while len(table) > keep:
        table.popitem(last=False)


class ChatRegistry:
    """Every session this process knows, and the sockets attached to each."""

    def __init__(self, config: ChatConfig | None = None) -> None:
        self.config = config or ChatConfig()
        self._logs: OrderedDict[str, SessionLog] = OrderedDict()

    def log(self, session: str) -> SessionLog:
        """The session's log, new if unknown; the session becomes the most recently used."""
        log = self._logs.get(session)
        if log is None:
            log = self._logs[session] = SessionLog(self.config.keep_frames)
            self._evict()
        self._logs.move_to_end(session)
        return log

    def _evict(self) -> None:
        if len(self._logs) <= self.config.max_sessions:
            return
        idle = [name for name, log in self._logs.items() if not log.listeners]
        for name in idle[: max(0, len(self._logs) - self.config.max_sessions)]:
            del self._logs[name]

    def record_ack(
        self, session: str, client_id: str, frame: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """The ack of a stored message, logged once per client id; and whether it is new."""
        log = self.log(session)
        earlier = log.acks.get(client_id)
        if earlier is not None:
            return earlier, False
        stamped = log.append(frame)
        _remember(log.acks, client_id, stamped, self.config.keep_frames)
        return stamped, True

    def record_agent_message(self, session: str, key: str, frame: dict[str, Any]) -> int:
        """Log an agent's message once per outbox key (a re-sent row is not shown twice)."""
        log = self.log(session)
        earlier = log.sent.get(key)
        if earlier is not None:
            return earlier
        seq: int = log.append(frame)["seq"]
        _remember(log.sent, key, seq, self.config.keep_frames)
        return seq

    def attach(self, session: str, listener: Listener, log_id: str | None, last_seq: int) -> Replay:
        """Attach a socket and return what it missed; nothing can be appended in between."""
        log = self.log(session)
        log.listeners.add(listener)
        return log.since(log_id, last_seq)

    def detach(self, session: str, listener: Listener) -> None:
        log = self._logs.get(session)
        if log is not None:
            log.listeners.discard(listener)

    def push(self, session: str, frame: dict[str, Any]) -> int:
        """Offer an unlogged frame (typing) to the session's sockets; how many got it."""
        log = self._logs.get(session)
        listeners = list(log.listeners) if log else []
        for listener in listeners:
            listener.offer(frame)
        return len(listeners)

    def remember_conversation(self, session: str, conversation_id: int | None) -> None:
        if conversation_id is not None:
            self.log(session).conversation_id = conversation_id

    def conversation_of(self, session: str) -> int | None:
        log = self._logs.get(session)
        return log.conversation_id if log else None
