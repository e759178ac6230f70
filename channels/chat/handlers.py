"""What each client frame does, one handler per frame type (`HANDLERS`, in protocol order).

A handler acts for one socket (`Chat`): `hello` opens or resumes the session
and attaches the socket to its log; `message` and `leave_message` are stored
through `accept_inbound` and acknowledged only after it returned (the hub has
committed: principle 3); `typing` becomes a bus event, never stored. A
handler raises `FrameError` (answered with an error frame) or `CloseError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from channels.chat.connection import Connection
from channels.chat.contact import check_contact, contact_metadata, do_link_contact
from channels.chat.protocol import (
    CLOSE_TOKEN,
    CLOSE_TRY_AGAIN,
    PONG,
    ChatMessage,
    ClientFrame,
    CloseError,
    FrameError,
    Hello,
    LeaveMessage,
    Ping,
    Pong,
    Typing,
    render_ack,
    render_error,
    render_welcome,
)
from channels.chat.sessions import (
    ChatRegistry,
    InvalidTokenError,
    SessionClaim,
    check_token,
    issue_token,
    new_claim,
)
from hub.agents import has_agents_online
from hub.context import Hub
from hub.errors import InvalidInputError
from hub.events import Event
from hub.intake import accept_inbound
from hub.values import Inbound

log = logging.getLogger(__name__)

T = TypeVar("T")
TYPING_EVENT = "typing.started"
LEFT_MESSAGE_SUBJECT = "Message left in the chat"


@dataclass
class Chat:
    """One socket's view of its session."""

    hub: Hub
    registry: ChatRegistry
    connection: Connection
    claim: SessionClaim | None = None
    linked: bool = False
    typed_at: float = 0.0

    @property
    def secret_key(self) -> str:
        return self.hub.settings.secret_key or ""

    def get_claim(self) -> SessionClaim:
        if self.claim is None:
            raise FrameError("hello_required", "say hello first")
        return self.claim


async def on_hello(chat: Chat, hello: Hello) -> None:
    if chat.claim is not None:
        raise FrameError("unexpected_hello", "this socket already said hello")
    claim = _resume(chat, hello.token) if hello.token else _open(chat, hello)
    agents_online = await has_agents_online(chat.hub)
    token = issue_token(chat.secret_key, claim)  # fresh: an active session does not expire
    # From attach's return to the last offer nothing awaits: no frame falls in between
    # or comes twice (an append waits for the session's lock, taken by attach).
    try:
        replay = await chat.registry.attach(
            claim.session, chat.connection, hello.log_id, hello.last_seq
        )
    except Exception as error:
        log.exception("a chat session's log could not be read")
        raise CloseError(CLOSE_TRY_AGAIN, "log_unavailable") from error
    chat.claim, chat.connection.greeted = claim, True
    chat.connection.offer(
        render_welcome(token, claim.session, replay.log_id, replay.head, agents_online)
    )
    if replay.gap:
        chat.connection.offer(render_error("replay_gap", "some earlier frames are lost"))
    for frame in replay.frames:
        chat.connection.offer(frame)


def _resume(chat: Chat, token: str) -> SessionClaim:
    try:
        return check_token(chat.secret_key, token, chat.registry.config.token_max_age)
    except InvalidTokenError as error:
        raise CloseError(CLOSE_TOKEN, "invalid_token") from error


def _open(chat: Chat, hello: Hello) -> SessionClaim:
    claim = new_claim(hello.name, hello.email, hello.phone)
    try:
        return check_contact(claim, chat.hub.settings.default_region)
    except InvalidInputError as error:
        chat.connection.offer(render_error("invalid_contact", error.message))
        return SessionClaim(claim.session, claim.name)


async def on_message(chat: Chat, message: ChatMessage) -> None:
    claim = chat.get_claim()
    if not chat.linked:
        await _store(do_link_contact(chat.hub, claim))
        chat.linked = True
    inbound = Inbound(
        channel="chat",
        sender_kind="chat",
        sender=claim.chat_id,
        external_id=f"{claim.session}:{message.client_id}",
        text=message.text,
        thread_key=claim.session,
        sender_name=claim.name,
        metadata=contact_metadata(claim),
    )
    result = await _store(accept_inbound(chat.hub, inbound))
    chat.registry.remember_conversation(claim.session, result.conversation_id)
    await _acknowledge(chat, claim, message.client_id)


async def on_leave_message(chat: Chat, message: LeaveMessage) -> None:
    claim = chat.get_claim()
    inbound = Inbound(
        channel="email",
        sender_kind="email",
        sender=message.email,
        external_id=f"chat:{claim.session}:{message.client_id}",
        subject=LEFT_MESSAGE_SUBJECT,
        text=message.text,
        thread_key=f"chat:{claim.session}",
        sender_name=message.name or claim.name,
        metadata={**contact_metadata(claim), "left_in_chat": True},
    )
    await _store(accept_inbound(chat.hub, inbound))
    await _acknowledge(chat, claim, message.client_id)


async def _store(storing: Awaitable[T]) -> T:
    """Await a write; the hub's refusal is `invalid_frame`, any failure `not_stored`."""
    try:
        return await storing
    except InvalidInputError as error:
        raise FrameError("invalid_frame", error.message) from None
    except Exception as error:
        log.exception("a chat message could not be stored")
        raise FrameError("not_stored", "the message was not stored; send it again") from error


async def _acknowledge(chat: Chat, claim: SessionClaim, client_id: str) -> None:
    """Log the ack (pushed to every socket of the session); a repeat gets its first ack.

    An ack that cannot be logged is `not_stored`: the message, sent again, is stored once.
    """
    ack = render_ack(client_id)
    frame, is_new = await _store(chat.registry.record_ack(claim.session, client_id, ack))
    if not is_new:
        chat.connection.offer(frame)


async def on_typing(chat: Chat, _typing: Typing) -> None:
    claim = chat.get_claim()
    now = time.monotonic()
    if now - chat.typed_at < chat.registry.config.typing_seconds:
        return
    chat.typed_at = now
    data = {
        "channel": "chat",
        "from": "customer",
        "chat_id": claim.chat_id,
        "conversation_id": chat.registry.conversation_of(claim.session),
    }
    await chat.hub.bus.publish([Event(TYPING_EVENT, data)])


async def on_ping(chat: Chat, _ping: Ping) -> None:
    chat.connection.offer(PONG)


async def on_pong(_chat: Chat, _pong: Pong) -> None:
    """Proof of life; the reader has already reset the idle deadline."""


Handler = Callable[[Chat, Any], Awaitable[None]]
HANDLERS: dict[type[ClientFrame], Handler] = {
    Hello: on_hello,
    ChatMessage: on_message,
    LeaveMessage: on_leave_message,
    Typing: on_typing,
    Ping: on_ping,
    Pong: on_pong,
}


async def handle(chat: Chat, frame: ClientFrame) -> None:
    with chat.hub.live.serving():  # a campaign in this process waits meanwhile
        await HANDLERS[type(frame)](chat, frame)
