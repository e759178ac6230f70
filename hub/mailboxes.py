"""The IMAP intake's bookkeeping: where it stands per folder, and every raw message.

A message's raw bytes are kept before anything parses them (`keep_raw`, or
`keep_raw_batch` for a whole FETCH batch in one statement, with the folder's
new state), under (source, UIDVALIDITY, UID), so a crash or a parser bug never
loses one. Kept messages wait (`waiting_raw`) until they are taken: a message
taken is marked ingested in the same transaction that stores its contact
(`ingest_raw`, `accept_raw_bounces`), so the row never says less than the hub
holds. A message that fails is retried; after `MAX_ATTEMPTS` it is quarantined
and shows in the dead-letter view (`/api/dead-letters`), whose replay hands the
stored bytes to the channel again. Once settled, the source is told (flag or
move) and the row marked `acknowledged` (`settled_unacknowledged`,
`mark_acknowledged`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from time import perf_counter
from typing import Any

from sqlalchemy import bindparam, false, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from hub.bounces import BounceResult, DeliveryReport, count_bounce, record_bounce
from hub.context import Hub, Work
from hub.db import insert_for
from hub.errors import NotFoundError
from hub.intake import IngestResult, count_ingest, ingest
from hub.models import MailboxState, RawMessage, utcnow
from hub.values import Inbound

MAX_ATTEMPTS = 3
KEEP_PARAMETERS = ("channel", "source", "uidvalidity", "uid", "content", "created_at", "updated_at")
DEAD = ("failed", "quarantined")
DONE = ("ingested", "quarantined")


async def get_mailbox_state(hub: Hub, source: str) -> tuple[int, int] | None:
    """(UIDVALIDITY, last UID taken) of a folder, or None when never read."""
    async with hub.sessions() as session:
        state = (
            await session.scalars(select(MailboxState).where(MailboxState.source == source))
        ).first()
    return (state.uidvalidity, state.last_uid) if state else None


async def save_mailbox_state(hub: Hub, source: str, uidvalidity: int, last_uid: int) -> None:
    async with hub.work() as work:
        await _save_state(work.session, source, uidvalidity, last_uid)


async def _save_state(session: AsyncSession, source: str, uidvalidity: int, last_uid: int) -> None:
    # One upsert, not a SELECT and an UPDATE: it runs in every commit of the reading loop.
    values = {"uidvalidity": uidvalidity, "last_uid": last_uid, "updated_at": utcnow()}
    statement = insert_for(session)(MailboxState.__table__).values(source=source, **values)
    await session.execute(statement.on_conflict_do_update(index_elements=["source"], set_=values))


async def keep_raw(
    hub: Hub, channel: str, source: str, uidvalidity: int, uid: int, content: bytes
) -> RawMessage:
    """Store one message's raw bytes once per (source, UIDVALIDITY, UID); returns the row."""
    await keep_raw_batch(hub, channel, source, uidvalidity, {uid: content})
    async with hub.sessions() as session:
        return (
            await session.scalars(
                select(RawMessage).where(
                    RawMessage.source == source,
                    RawMessage.uidvalidity == uidvalidity,
                    RawMessage.uid == uid,
                )
            )
        ).one()


async def keep_raw_batch(
    hub: Hub,
    channel: str,
    source: str,
    uidvalidity: int,
    contents: Mapping[int, bytes],
    last_uid: int | None = None,
) -> None:
    """Store a batch of raw messages (UID -> bytes) once each, in one transaction.

    One INSERT that leaves rows already kept alone; with `last_uid`,
    the folder's state moves to it in the same commit, so the state never
    claims a message the hub does not hold.
    """
    async with hub.work() as work:
        if contents:
            connection = await work.session.connection()
            keep = _keep_statement(connection.dialect)
            now = keep.stamp(utcnow())
            rows = [
                (channel, source, uidvalidity, uid, content, now, now)
                for uid, content in contents.items()
            ]
            await connection.exec_driver_sql(keep.sql, rows)
        if last_uid is not None:
            await _save_state(work.session, source, uidvalidity, last_uid)


@dataclass(frozen=True, slots=True)
class _KeepStatement:
    sql: str  # in the driver's own parameter style
    stamp: Callable[[datetime], Any]  # a time as the driver takes it


@lru_cache(maxsize=8)  # one per engine; a test run makes many
def _keep_statement(dialect: Dialect) -> _KeepStatement:
    """The raw INSERT as the driver runs it, compiled once per dialect.

    A batch of thousands of messages would otherwise pay SQLAlchemy's
    parameter processing for ten columns of every row, which costs as much
    as the FETCH that brought them; here each row is a plain tuple, its
    constant columns are in the statement, and the one timestamp of the batch
    is converted once.
    """
    table = RawMessage.__table__
    insert = postgresql_insert if dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(table)
        .inline()  # no RETURNING of the new ids: nobody reads them
        .values(
            channel=bindparam("channel"),
            source=bindparam("source"),
            uidvalidity=bindparam("uidvalidity"),
            uid=bindparam("uid"),
            content=bindparam("content"),
            status=literal_column("'received'"),
            attempts=literal_column("0"),
            acknowledged=false(),
            created_at=bindparam("created_at"),
            updated_at=bindparam("updated_at"),
        )
        .on_conflict_do_nothing(index_elements=["source", "uidvalidity", "uid"])
    )
    compiled = statement.compile(dialect=dialect)
    if tuple(compiled.positiontup or ()) != KEEP_PARAMETERS:  # a positional style, this order
        raise RuntimeError(f"the raw INSERT's parameters came as {compiled.positiontup}")
    stamp_type = table.c.created_at.type.dialect_impl(dialect)
    processor = stamp_type.bind_processor(dialect) or (lambda value: value)
    return _KeepStatement(compiled.string, processor)


async def waiting_raw(hub: Hub, source: str, limit: int) -> list[RawMessage]:
    """The oldest kept messages of a source still to be taken (new, or failed and retried)."""
    statement = (
        select(RawMessage)
        .where(
            RawMessage.source == source,
            RawMessage.acknowledged.is_(False),
            RawMessage.status.in_(("received", "failed")),
        )
        .order_by(RawMessage.id)
        .limit(limit)
    )
    async with hub.sessions() as session:
        return list(await session.scalars(statement))


async def settled_unacknowledged(
    hub: Hub, source: str, uidvalidity: int
) -> list[tuple[int, int, str]]:
    """(id, UID, status) of the messages taken or quarantined that the source was not told of."""
    statement = select(RawMessage.id, RawMessage.uid, RawMessage.status).where(
        RawMessage.source == source,
        RawMessage.acknowledged.is_(False),
        RawMessage.status.in_(DONE),
        RawMessage.uidvalidity == uidvalidity,
    )
    async with hub.sessions() as session:
        return [(row.id, row.uid, row.status) for row in await session.execute(statement)]


async def mark_acknowledged(hub: Hub, raw_ids: Sequence[int]) -> None:
    if raw_ids:
        async with hub.work() as work:
            await work.session.execute(
                update(RawMessage).where(RawMessage.id.in_(raw_ids)).values(acknowledged=True)
            )


async def ingest_raw(hub: Hub, raw_id: int, inbound: Inbound) -> IngestResult:
    """Ingest the contact of a raw message and mark the message ingested, in one commit.

    When this returns, both are committed, so the caller may acknowledge the
    message to its source.
    """
    started = perf_counter()
    async with hub.work() as work:
        result = await ingest(work, inbound, hub.router, hub.settings.default_region)
        await _mark_ingested(work, raw_id, result.interaction_id)
    count_ingest(hub, inbound.channel, result, started)
    return result


async def accept_raw_bounces(
    hub: Hub, raw_id: int, reports: Sequence[DeliveryReport]
) -> list[BounceResult]:
    """Record a raw message's delivery reports and mark it ingested, in one commit."""
    async with hub.work() as work:
        results = [await record_bounce(work, hub, report) for report in reports]
        await _mark_ingested(work, raw_id, None)
    for report, result in zip(reports, results, strict=True):
        count_bounce(hub, report, result)
    return results


async def _mark_ingested(work: Work, raw_id: int, interaction_id: int | None) -> None:
    await work.session.execute(
        update(RawMessage)
        .where(RawMessage.id == raw_id)
        .values(status="ingested", interaction_id=interaction_id, error=None)
    )


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
