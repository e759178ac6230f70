"""The live chat's session log, in the database: what a restart must not lose.

Each chat session (`chat_sessions`) numbers the frames it logs (`chat_frames`:
acks and agent messages) 1, 2, 3, ... with no gaps: appending takes the
session's row lock (`UPDATE ... SET head = head + 1 RETURNING head`) and
inserts the frame in the same unit of work, so two appenders, in one process
or several, never get the same seq. An ack is logged once per client id and
an agent's message once per outbox key: appending one already logged returns
the first frame, unchanged. The channel (`channels.chat`) holds no database
session; it calls these functions and pushes what they return to its sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from hub.context import Hub, Work
from hub.db import insert_for
from hub.models import ChatFrame, ChatSession, utcnow


@dataclass(frozen=True, slots=True)
class Logged:
    """A frame of the log, stamped with its seq; `is_new` unless it was logged before."""

    frame: dict[str, Any]
    is_new: bool

    @property
    def seq(self) -> int:
        seq: int = self.frame["seq"]
        return seq


@dataclass(frozen=True, slots=True)
class Tail:
    """The session's newest seq, and its frames after a given seq, in order."""

    head: int
    frames: list[dict[str, Any]]


async def append_frame(
    hub: Hub,
    session: str,
    frame: dict[str, Any],
    *,
    client_id: str | None = None,
    outbox_key: str | None = None,
) -> Logged:
    """Log a frame with the session's next seq, once per client id or outbox key."""
    async with hub.work() as work:
        return await do_append_frame(
            work, session, frame, client_id=client_id, outbox_key=outbox_key
        )


async def do_append_frame(
    work: Work,
    session: str,
    frame: dict[str, Any],
    *,
    client_id: str | None = None,
    outbox_key: str | None = None,
) -> Logged:
    await _ensure_session(work, session)
    earlier = await _logged(work, session, client_id, outbox_key)
    if earlier is not None:
        return Logged(earlier.frame, is_new=False)
    head = await work.session.scalar(
        update(ChatSession)
        .where(ChatSession.session == session)
        .values(head=ChatSession.head + 1)
        .returning(ChatSession.head)
    )
    stamped = {**frame, "seq": head}
    work.session.add(
        ChatFrame(
            session=session,
            seq=head,
            kind=str(frame.get("type", ""))[:10],
            client_id=client_id,
            outbox_key=outbox_key,
            frame=stamped,
        )
    )
    await work.session.flush()
    return Logged(stamped, is_new=True)


async def _ensure_session(work: Work, session: str) -> None:
    """Create the session's row on first use, then hold its lock (PostgreSQL; SQLite's
    writers are serialized by BEGIN IMMEDIATE), so the duplicate check below is safe."""
    insert = insert_for(work.session)
    now = utcnow()
    await work.session.execute(
        insert(ChatSession)
        .values(session=session, chat_id=session, head=0, created_at=now, last_seen_at=now)
        .on_conflict_do_nothing(index_elements=["session"])
    )
    await work.session.execute(
        select(ChatSession.head).where(ChatSession.session == session).with_for_update()
    )


async def _logged(
    work: Work, session: str, client_id: str | None, outbox_key: str | None
) -> ChatFrame | None:
    if client_id is not None:
        key = ChatFrame.client_id == client_id
    elif outbox_key is not None:
        key = ChatFrame.outbox_key == outbox_key
    else:
        return None
    statement = select(ChatFrame).where(ChatFrame.session == session, key)
    return (await work.session.scalars(statement)).first()


async def frames_after(hub: Hub, session: str, last_seq: int) -> Tail:
    """The session's head and its frames with a seq above `last_seq` (none if unknown)."""
    async with hub.sessions() as db:
        head = await db.scalar(select(ChatSession.head).where(ChatSession.session == session))
        rows = await db.scalars(
            select(ChatFrame.frame)
            .where(ChatFrame.session == session, ChatFrame.seq > last_seq)
            .order_by(ChatFrame.seq)
        )
        return Tail(head or 0, list(rows))


async def open_session(hub: Hub, session: str) -> datetime:
    """Create the session's row if new and note that its customer was here now (a
    (re)connection); when the row was created, which names the session's log."""
    async with hub.work() as work:
        await _ensure_session(work, session)
        created_at = await work.session.scalar(
            update(ChatSession)
            .where(ChatSession.session == session)
            .values(last_seen_at=utcnow())
            .returning(ChatSession.created_at)
        )
    if created_at is None:  # the row was ensured in the same unit of work
        raise RuntimeError(f"chat session {session!r} vanished")
    return created_at
