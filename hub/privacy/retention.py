"""Retention: history older than OMNIHUB_RETENTION_DAYS is purged (unset: kept forever).

What is older than the cutoff goes, in batches of its own transaction each, so
a large first purge never holds the database for long:

    interactions      occurred_at before the cutoff (their attachments with them)
    raw_messages      received before the cutoff and settled (taken, or quarantined)
    outbox            created before the cutoff and finished (sent, delivered,
                      blocked, failed, unknown); queued and sending rows stay
    chat_frames       logged before the cutoff; chat sessions idle since then
    complaints        resolved before the cutoff
    conversations     closed before the cutoff

Customers, identities, consents, blocks, suppressions and the audit log are
not history and stay: they say whom the hub may contact and who did what.
`omnihub retention purge` runs it once; `omnihub serve` runs it daily
(`retention_job`), and logs a warning at start when suppression entries were
made under another SECRET_KEY (`hub.privacy.suppression`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, select

from hub.audit import record
from hub.context import Hub
from hub.models import (
    ChatFrame,
    ChatSession,
    Complaint,
    Conversation,
    Interaction,
    OutboxMessage,
    RawMessage,
    utcnow,
)
from hub.privacy.suppression import count_unmatchable

log = logging.getLogger(__name__)

BATCH = 1000
PURGE_EVERY_SECONDS = 24 * 3600
FINISHED = ("sent", "delivered", "blocked", "failed", "unknown")
# Raw mail still to be taken (received, failed and retried) is never purged: nothing is lost.
SETTLED_RAW = ("ingested", "quarantined")


def purge_targets(cutoff: datetime) -> dict[str, tuple[Any, ColumnElement[bool]]]:
    """Per kind of history: its model and which of its rows are past the cutoff."""
    return {
        "raw_messages": (
            RawMessage,
            (RawMessage.created_at < cutoff) & RawMessage.status.in_(SETTLED_RAW),
        ),
        "interactions": (Interaction, Interaction.occurred_at < cutoff),
        "outbox": (
            OutboxMessage,
            (OutboxMessage.created_at < cutoff) & OutboxMessage.status.in_(FINISHED),
        ),
        "chat_frames": (ChatFrame, ChatFrame.created_at < cutoff),
        "chat_sessions": (ChatSession, ChatSession.last_seen_at < cutoff),
        "complaints": (
            Complaint,
            (Complaint.status == "resolved") & (Complaint.resolved_at < cutoff),
        ),
        "conversations": (
            Conversation,
            (Conversation.status == "closed") & (Conversation.closed_at < cutoff),
        ),
    }


async def purge_history(hub: Hub, days: int, now: datetime | None = None) -> dict[str, int]:
    """Delete the history older than `days`; returns how many rows of each kind went."""
    if days < 1:
        raise ValueError("retention is at least one day")
    cutoff = (now or utcnow()) - timedelta(days=days)
    counts = {
        name: await _purge(hub, model, condition)
        for name, (model, condition) in purge_targets(cutoff).items()
    }
    async with hub.work() as work:
        record(
            work.session,
            None,
            "retention.purged",
            "retention",
            None,
            days=days,
            cutoff=cutoff.isoformat(),
            counts=counts,
        )
        work.emit("retention.purged", days=days, counts=counts)
    return counts


async def _purge(hub: Hub, model: Any, condition: ColumnElement[bool]) -> int:
    """Delete in batches, each in its own transaction; returns how many rows went."""
    key = next(iter(model.__table__.primary_key.columns))
    total = 0
    while True:
        async with hub.work() as work:
            ids = list(await work.session.scalars(select(key).where(condition).limit(BATCH)))
            if ids:
                await work.session.execute(delete(model).where(key.in_(ids)))
        total += len(ids)
        if len(ids) < BATCH:
            return total


async def warn_about_unmatchable_suppressions(hub: Hub) -> int:
    key = hub.policy.suppression_key or b""
    async with hub.sessions() as session:
        stale = await count_unmatchable(session, key)
    if stale:
        log.warning(
            "%d suppressed addresses were hashed under another OMNIHUB_SECRET_KEY and no "
            "longer match: erased addresses they stand for may be marketed to again",
            stale,
        )
    return stale


def retention_job(hub: Hub) -> Any:
    """The background job: the suppression check once, then a purge a day (when set)."""

    async def job(stop: asyncio.Event) -> None:
        await warn_about_unmatchable_suppressions(hub)
        days = hub.settings.retention_days
        while days is not None and not stop.is_set():
            try:
                counts = await purge_history(hub, days)
                log.info("retention purge (%d days): %s", days, counts)
            except Exception:  # the next day tries again; a purge is safe to repeat
                log.exception("retention purge failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PURGE_EVERY_SECONDS)

    return job
