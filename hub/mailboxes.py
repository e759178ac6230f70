"""The IMAP intake's bookkeeping: where it stands per folder, and every raw message.

A message's raw bytes are kept before anything parses them (`keep_raw`, or
`keep_raw_batch` for a whole FETCH batch in one statement), under (source,
UIDVALIDITY, UID), so a crash or a parser bug never loses one. A message taken
is marked ingested in the same transaction that stores its contact
(`ingest_raw`, `accept_raw_bounces`), so the row never says less than the hub
holds. A message that fails is retried; after `MAX_ATTEMPTS` it is quarantined
and shows in the dead-letter view (`/api/dead-letters`), whose replay hands the
stored bytes to the channel again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.bounces import BounceResult, DeliveryReport, count_bounce, record_bounce
from hub.context import Hub, Work
from hub.db import insert_for
from hub.errors import NotFoundError
from hub.intake import IngestResult, count_ingest, ingest
from hub.models import MailboxState, RawMessage
from hub.values import Inbound

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
    """Store one message's raw bytes once per (source, UIDVALIDITY, UID); returns the row."""
    return (await keep_raw_batch(hub, channel, source, uidvalidity, {uid: content}))[uid]


async def keep_raw_batch(
    hub: Hub, channel: str, source: str, uidvalidity: int, contents: Mapping[int, bytes]
) -> dict[int, RawMessage]:
    """Store a batch of raw messages (UID -> bytes) once each, in one transaction.

    One multi-row INSERT that leaves rows already kept alone, then one SELECT of
    their bookkeeping (not their bytes). Returns detached rows by UID, carrying
    the bytes given: a UID's message never changes under one UIDVALIDITY, so
    they are the stored ones.
    """
    if not contents:
        return {}
    rows = [
        {
            "channel": channel,
            "source": source,
            "uidvalidity": uidvalidity,
            "uid": uid,
            "content": content,
            "status": "received",
            "attempts": 0,
        }
        for uid, content in contents.items()
    ]
    columns = (
        RawMessage.id,
        RawMessage.uid,
        RawMessage.status,
        RawMessage.attempts,
        RawMessage.interaction_id,
    )
    async with hub.work() as work:
        await work.session.execute(
            insert_for(work.session)(RawMessage)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["source", "uidvalidity", "uid"])
        )
        kept = await work.session.execute(
            select(*columns).where(
                RawMessage.source == source,
                RawMessage.uidvalidity == uidvalidity,
                RawMessage.uid.in_(list(contents)),
            )
        )
        return {
            row.uid: RawMessage(
                id=row.id,
                channel=channel,
                source=source,
                uidvalidity=uidvalidity,
                uid=row.uid,
                content=contents[row.uid],
                status=row.status,
                attempts=row.attempts,
                interaction_id=row.interaction_id,
            )
            for row in kept
        }


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
