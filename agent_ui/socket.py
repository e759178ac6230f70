"""`WS /agent/ws`: the console's live feed, resumable from the last event id it saw.

The socket is opened with the session cookie from a page of our own origin (a
socket is not bound by the same-origin policy, so the Origin is checked here)
and `?last_event_id=N`. It subscribes to the bus first and then replays what
came after N, so no event falls between the two; a client too far behind to
replay (or more than `REPLAY_MOST` events behind) gets `{"type": "resync"}` and
reloads its lists (so does every console when the Redis bus comes back after an
outage, whose events may be lost). As Zulip's event queues do, it sends a
heartbeat (with the newest event id it has passed, sent or not) when nothing
went out for `HEARTBEAT_SECONDS`: a task of its own with one timer per
heartbeat, not a timeout around every event's wait. Events that are waiting
together (one commit's) go out together, as a list of frames.

What the socket forwards is the event's type, id and ids only, never customer
data, and only events about conversations the agent may see
(`hub.visibility`); a ringing call only to the agent it rings for. The console
fetches what it shows through the access-checked fragments.

From the client it takes collision notices, which go out on the bus to every
console (so across processes too): `viewing` (with `hello` on opening, which
asks the others viewing to say so), `typing` and `left`.

When an agent's last socket in this process closes, the agent goes offline;
when they come back, their previous presence is restored. `Sockets.cut`
closes an agent's sockets (the tests use it to play a lost line).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import exists, select
from starlette.websockets import WebSocketState

from hub.agents import stamp_presence
from hub.context import Hub
from hub.events import Event
from hub.events_redis import RESUMED
from hub.models import Agent, Conversation
from hub.visibility import may_see, sees_everything, visible_to

router = APIRouter()

HEARTBEAT_SECONDS = 20.0
CACHE_SIZE = 5_000
FORWARDED_KEYS = (
    "conversation_id",
    "customer_id",
    "interaction_id",
    "complaint_id",
    "agent_id",
    "assignee_id",
    "queue",
    "status",
    "channel",
    "direction",
    "name",
    "hello",
)
COLLISION_TYPES = {"viewing": "agent.viewing", "typing": "agent.typing", "left": "agent.left"}
ENCODED_KEPT = 1_000
# A console further behind than this many events reloads its lists instead (`resync`,
# with the id to resume from): cheaper than going through them one by one, and the
# replay, one frame, stays small (a client may refuse a big one: Python's websockets
# over 1 MiB, some 4,000 events).
REPLAY_MOST = 1_000
# Event id -> (the event, its frame as JSON), the newest ENCODED_KEPT.
_ENCODED: OrderedDict[int, tuple[Event, str]] = OrderedDict()
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


class Sockets:
    """Open agent sockets per agent in this process, and presence to restore on return."""

    def __init__(self) -> None:
        self.open: dict[int, set[WebSocket]] = {}
        self.away_presence: dict[int, str] = {}

    def joined(self, agent_id: int, websocket: WebSocket) -> None:
        self.open.setdefault(agent_id, set()).add(websocket)

    def left(self, agent_id: int, websocket: WebSocket) -> bool:
        """Whether that was the agent's last socket here."""
        mine = self.open.get(agent_id, set())
        mine.discard(websocket)
        if mine:
            return False
        self.open.pop(agent_id, None)
        return True

    async def cut(self, agent_id: int) -> int:
        """Close the agent's sockets (as a lost line would); how many there were."""
        sockets = list(self.open.get(agent_id, ()))
        for websocket in sockets:
            await websocket.close(TRY_AGAIN_LATER)
        return len(sockets)


def sockets_of(websocket: WebSocket) -> Sockets:
    state = websocket.app.state
    if not hasattr(state, "agent_sockets"):
        state.agent_sockets = Sockets()
    return state.agent_sockets


async def set_presence(hub: Hub, agent_id: int, status: str) -> None:
    """Through the router when it can (routing pulls waiting work for an agent coming online)."""
    routed = getattr(hub.router, "set_presence", None)
    if routed is not None:
        await routed(hub, agent_id, status)
        return
    async with hub.work() as work:
        agent = await work.session.get(Agent, agent_id)
        if agent is None:
            return
        stamp_presence(agent, status)
        work.emit("agent.presence_changed", agent_id=agent_id, status=status)


def is_same_origin(websocket: WebSocket) -> bool:
    origin = websocket.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc == websocket.headers.get("host")


class Feed:
    """One socket's view: which events the agent may have, and in what form."""

    def __init__(self, hub: Hub, agent: Agent) -> None:
        self.hub = hub
        self.agent = agent
        self.everything = sees_everything(agent)
        # conversation id -> (queue, assignee, customer): enough to decide visibility.
        self.known: OrderedDict[int, tuple[str | None, int | None, int]] = OrderedDict()
        self.customers: set[int] = set()
        self.viewing: int | None = None
        self.last_id = 0  # the newest event passed, sent or not: the client resumes from it
        self.sent_at = time.monotonic()

    async def may_have(self, event: Event) -> bool:
        data = event.data
        if event.type == "call.ringing":
            return data.get("agent_id") == self.agent.id
        if self.everything:
            return True
        conversation_id = data.get("conversation_id")
        if conversation_id is not None:
            before = await self.is_visible(conversation_id)
            if event.type == "conversation.assigned":
                self._learn(conversation_id, data.get("queue"), data.get("assignee_id"))
            # An assignment away from the agent is news to them too: the row goes.
            return before or await self.is_visible(conversation_id)
        if event.type.startswith("agent."):
            return True
        customer_id = data.get("customer_id")
        return isinstance(customer_id, int) and await self.is_customer_visible(customer_id)

    async def is_customer_visible(self, customer_id: int) -> bool:
        """Through a conversation of the customer's the agent may see (remembered once seen)."""
        if customer_id not in self.customers:
            statement = select(
                exists().where(Conversation.customer_id == customer_id, visible_to(self.agent))
            )
            async with self.hub.sessions() as session:
                if not await session.scalar(statement):
                    return False
            self.customers.add(customer_id)
        return True

    def _learn(self, conversation_id: int, queue: str | None, assignee: int | None) -> None:
        customer = self.known.get(conversation_id, (None, None, 0))[2]
        self.known[conversation_id] = (queue, assignee, customer)
        self.known.move_to_end(conversation_id)
        while len(self.known) > CACHE_SIZE:
            self.known.popitem(last=False)

    async def is_visible(self, conversation_id: int) -> bool:
        if self.everything:
            return True
        if conversation_id not in self.known:
            async with self.hub.sessions() as session:
                found = await session.get(Conversation, conversation_id)
            if found is None:
                return False
            self.known[conversation_id] = (found.queue, found.assignee_id, found.customer_id)
        queue, assignee, customer = self.known[conversation_id]
        probe = Conversation(queue=queue, assignee_id=assignee, customer_id=customer)
        visible = may_see(self.agent, probe)
        if visible:
            self.customers.add(customer)
        return visible

    @staticmethod
    def frame(event: Event) -> dict[str, Any]:
        data = {key: event.data[key] for key in FORWARDED_KEYS if key in event.data}
        return {"id": event.id, "type": event.type, "at": event.at.isoformat(), "data": data}


@router.websocket("/agent/ws")
async def agent_socket(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    agent = await _signed_in(websocket, hub)
    if agent is None:
        await websocket.close(POLICY_VIOLATION)
        return
    after = _last_event_id(websocket)
    await websocket.accept()
    sockets = sockets_of(websocket)
    sockets.joined(agent.id, websocket)
    await _restore_presence(hub, sockets, agent)
    feed = Feed(hub, agent)
    try:
        async with hub.bus.subscribe() as subscription:
            # One wait for the socket's life, not one per event: whichever side ends
            # first (the client went away, or the writer closed) ends the other.
            tasks = (
                asyncio.create_task(_read(websocket, hub, feed)),
                asyncio.create_task(_write(websocket, hub, feed, subscription, after)),
                asyncio.create_task(_beat(websocket, feed)),
            )
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    # Gone while we wrote to it: Starlette raises RuntimeError after a close.
                    with contextlib.suppress(
                        asyncio.CancelledError, WebSocketDisconnect, RuntimeError
                    ):
                        await task
    finally:
        await _leave(hub, sockets, feed, websocket)


async def _signed_in(websocket: WebSocket, hub: Hub) -> Agent | None:
    agent_id = websocket.session.get("agent_id")
    if not isinstance(agent_id, int) or not is_same_origin(websocket):
        return None
    async with hub.sessions() as session:
        agent = await session.get(Agent, agent_id)
    return agent if agent is not None and agent.is_active else None


def _last_event_id(websocket: WebSocket) -> int:
    raw = websocket.query_params.get("last_event_id", "0")
    return int(raw) if raw.isdigit() else 0


async def _restore_presence(hub: Hub, sockets: Sockets, agent: Agent) -> None:
    previous = sockets.away_presence.pop(agent.id, None)
    if previous is not None and agent.presence == "offline":
        await set_presence(hub, agent.id, previous)


async def _leave(hub: Hub, sockets: Sockets, feed: Feed, websocket: WebSocket) -> None:
    agent = feed.agent
    if feed.viewing is not None:
        await _publish(hub, "agent.left", feed, feed.viewing, False)
    if not sockets.left(agent.id, websocket):
        return
    async with hub.sessions() as session:
        fresh = await session.get(Agent, agent.id)
    if fresh is not None and fresh.presence != "offline":
        sockets.away_presence[agent.id] = fresh.presence
        await set_presence(hub, agent.id, "offline")


async def _write(websocket: WebSocket, hub: Hub, feed: Feed, subscription: Any, after: int) -> None:
    missed = hub.bus.replay(after)
    feed.last_id = after
    if missed is None:
        await websocket.send_json({"type": "resync"})
        missed = []
    elif len(missed) > REPLAY_MOST:
        feed.last_id = missed[-1].id
        await websocket.send_json({"type": "resync", "id": feed.last_id})
        missed = []
    await _forward(websocket, feed, missed)
    while True:
        if getattr(subscription, "overflowed", False) and subscription.queue.empty():
            await websocket.close(TRY_AGAIN_LATER)  # the client resumes from `last_id`
            return
        event = await subscription.get()
        await _forward(websocket, feed, [event, *_waiting(subscription)])


async def _beat(websocket: WebSocket, feed: Feed) -> None:
    """A heartbeat whenever nothing went out for `HEARTBEAT_SECONDS`."""
    while True:
        idle = time.monotonic() - feed.sent_at
        if idle >= HEARTBEAT_SECONDS:
            await websocket.send_json({"type": "heartbeat", "last_event_id": feed.last_id})
            feed.sent_at, idle = time.monotonic(), 0.0
        await asyncio.sleep(HEARTBEAT_SECONDS - idle)


def _waiting(subscription: Any) -> list[Event]:
    """The events already queued behind the one just taken: one commit's events come
    together, and go out in one frame, so the console fetches a changed row once."""
    queue = getattr(subscription, "queue", None)
    taken: list[Event] = []
    while queue is not None and not queue.empty():
        taken.append(queue.get_nowait())
    return taken


async def _forward(websocket: WebSocket, feed: Feed, events: list[Event]) -> None:
    """Send the events the agent may have (one frame, or a list of frames); note the newest id."""
    frames: list[str] = []
    for event in events:
        if event.type == RESUMED:
            # Redis was away: events of the outage may be lost, so the console reloads.
            frames.append(json.dumps({"type": "resync", "id": event.id}))
        elif event.id > feed.last_id and await feed.may_have(event):  # older: from the replay
            frames.append(encoded_frame(event))
        feed.last_id = max(feed.last_id, event.id)
    if frames:
        await websocket.send_text(frames[0] if len(frames) == 1 else f"[{','.join(frames)}]")
        feed.sent_at = time.monotonic()


def encoded_frame(event: Event) -> str:
    """The event's frame as JSON, encoded once for every console that gets it."""
    kept = _ENCODED.get(event.id)
    # The very event, not only its id: every hub has a bus of its own (tests run many
    # in one process), and each bus hands one Event object to all its subscribers.
    if kept is not None and kept[0] is event:
        return kept[1]
    text = json.dumps(Feed.frame(event))
    _ENCODED[event.id] = (event, text)
    while len(_ENCODED) > ENCODED_KEPT:
        _ENCODED.popitem(last=False)
    return text


async def _read(websocket: WebSocket, hub: Hub, feed: Feed) -> None:
    while websocket.client_state == WebSocketState.CONNECTED:
        try:
            message = json.loads(await websocket.receive_text())
        except ValueError:
            continue
        kind = COLLISION_TYPES.get(message.get("type")) if isinstance(message, dict) else None
        conversation_id = message.get("conversation_id") if kind else None
        if not isinstance(conversation_id, int) or not await feed.is_visible(conversation_id):
            continue
        feed.viewing = None if kind == "agent.left" else conversation_id
        await _publish(hub, kind, feed, conversation_id, message.get("hello") is True)


async def _publish(hub: Hub, kind: str, feed: Feed, conversation_id: int, hello: bool) -> None:
    data = {
        "agent_id": feed.agent.id,
        "name": feed.agent.name,
        "conversation_id": conversation_id,
        "hello": hello,
    }
    await hub.bus.publish([Event(kind, data)])
