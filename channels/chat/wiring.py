"""How the app wires live chat: one session registry per app, shared by two users.

The outbox dispatcher delivers agent replies through `ChatSender(registry)`;
the websocket route reads the same registry from `app.state.chat`. In
`hub/app.py`:

    wire_channels:   wiring.senders["chat"] = chat.build_sender()
    create_app:      chat_registry = chat.registry_of(wiring.senders)   # after senders=...
                     jobs.update(chat.jobs(running, chat_registry))
                     app.state.chat = chat_registry

`registry_of` takes the registry from whichever chat sender is in use (a test
hands in its own), so the route and the dispatcher never hold two different
ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from channels.chat.relay import TypingRelay
from channels.chat.sender import ChatSender
from channels.chat.sessions import ChatConfig, ChatRegistry
from hub.context import Hub
from hub.delivery import Sender

Job = Callable[[asyncio.Event], Awaitable[None]]


def build_sender(config: ChatConfig | None = None) -> ChatSender:
    return ChatSender(ChatRegistry(config))


def registry_of(senders: Mapping[str, Sender]) -> ChatRegistry | None:
    sender = senders.get("chat")
    return sender.registry if isinstance(sender, ChatSender) else None


def jobs(hub: Hub, registry: ChatRegistry | None) -> dict[str, Job]:
    """The chat's background work: relaying agent typing to the sockets."""
    if registry is None:
        return {}
    return {"chat typing relay": TypingRelay(hub, registry).run}
