"""The IMAP intake's bookkeeping: where it stands per folder, and every raw message.

A message's raw bytes are kept before anything parses them (`keep_raw`), under
(source, UIDVALIDITY, UID), so a crash or a parser bug never loses one. A
message that fails is retried; after `MAX_ATTEMPTS` it is quarantined and shows
in the dead-letter view (`/api/dead-letters`), whose replay hands the stored
bytes to the channel again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub.context import Hub
from hub.errors import NotFoundError
from hub.models import MailboxState, RawMessage

MAX_ATTEMPTS = 3
DEAD = ("failed", "quarantined")


async def get_mailbox_state(hub: Hub, source: str) -> tuple[int, int] | None:
    """(UIDVALIDITY, last UID taken) of a folder, or None when never read."""
    async with hub.sessions() as session:
        state = (
            await session.scalars(select(MailboxState).where(MailboxState.source == source))
        ).first()
    return (state.uidvalidity, state.last_uid) if state else None


async def save_mailbox_state(hub: Hub, source: str, uidvalidity: int, last_uid: int) -> None:
    async with hub.work() as work:
        state = (
            await work.session.scalars(select(MailboxState).where(MailboxState.source == source))
        ).first()
        if state is None:
            work.session.add(
                MailboxState(source=source, uidvalidity=uidvalidity, last_uid=last_uid)
            )
        else:
            state.uidvalidity, state.last_uid = uidvalidity, last_uid


async def keep_raw(
    hub: Hub, channel: str, source: str, uidvalidity: int, uid: int, content: bytes
) -> RawMessage:
    """Store the raw bytes once per (source, UIDVALIDITY, UID); returns the row."""
    async with hub.work() as work:
        insert = (
            postgresql_insert
            if work.session.get_bind().dialect.name == "postgresql"
            else sqlite_insert
        )
        await work.session.execute(
            insert(RawMessage)
            .values(
                channel=channel,
                source=source,
                uidvalidity=uidvalidity,
                uid=uid,
                content=content,
                status="received",
                attempts=0,
            )
            .on_conflict_do_nothing(index_elements=["source", "uidvalidity", "uid"])
        )
        return (
            await work.session.scalars(
                select(RawMessage).where(
                    RawMessage.source == source,
                    RawMessage.uidvalidity == uidvalidity,
                    RawMessage.uid == uid,
                )
            )
        ).one()


async def mark_done(hub: Hub, raw_id: int, status: str, interaction_id: int | None) -> None:
    async with hub.work() as work:
        raw = await work.session.get(RawMessage, raw_id)
        if raw is not None:
            raw.status, raw.interaction_id, raw.error = status, interaction_id, None


async def mark_failed(hub: Hub, raw_id: int, error: str) -> RawMessage:
    """Count a failed try; the third quarantines the message."""
    async with hub.work() as work:
        raw = await work.session.get(RawMessage, raw_id)
        if raw is None:
            raise NotFoundError(f"no raw message {raw_id}")
        raw.attempts += 1
        raw.error = error[:2000]
        raw.status = "quarantined" if raw.attempts >= MAX_ATTEMPTS else "failed"
        work.emit(
            "message.dead_lettered" if raw.status == "quarantined" else "message.failed",
            raw_message_id=raw.id,
            error=raw.error,
        )
        return raw


def dead_letter_view(raw: RawMessage) -> dict[str, Any]:
    return {
        "id": raw.id,
        "channel": raw.channel,
        "source": raw.source,
        "uid": raw.uid,
        "uidvalidity": raw.uidvalidity,
        "status": raw.status,
        "attempts": raw.attempts,
        "error": raw.error,
        "size": len(raw.content),
        "created_at": raw.created_at,
        "updated_at": raw.updated_at,
    }


async def list_dead_letters(
    session: AsyncSession, limit: int, before: int | None = None
) -> tuple[list[RawMessage], int | None]:
    statement = select(RawMessage).where(RawMessage.status.in_(DEAD))
    if before is not None:
        statement = statement.where(RawMessage.id < before)
    rows = list(await session.scalars(statement.order_by(RawMessage.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    return rows[:limit], rows[limit - 1].id if more else None
