"""A customer's history across all channels, newest first, paged by keyset.

The cursor is the (occurred_at, id) of the last entry a page returned; the next
page holds the entries strictly before it in that order. Entries that arrive
while an agent pages sort before the cursor and never shift a later page, so
every entry that existed is returned exactly once. The query walks the index
(customer_id, occurred_at, id) and never counts or offsets.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import InvalidInputError
from hub.models import Interaction


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[dict[str, Any]]
    next: str | None


def encode_cursor(occurred_at: datetime, entry_id: int) -> str:
    raw = f"{occurred_at.isoformat()}|{entry_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, entry_id = raw.split("|")
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise ValueError("naive time")
        return parsed, int(entry_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInputError(
            "before is not a cursor this API returned", field="before"
        ) from None


HISTORY_COLUMNS = (
    Interaction.id,
    Interaction.occurred_at,
    Interaction.channel,
    Interaction.direction,
    Interaction.kind,
    Interaction.subject,
    Interaction.text,
    Interaction.conversation_id,
    Interaction.sender,
    Interaction.author_agent_id,
)


def history_query(customer_id: int, limit: int, before: str | None = None) -> Select[Any]:
    """The bare indexed SELECT of one history page (also what the benchmark times)."""
    statement = select(*HISTORY_COLUMNS).where(Interaction.customer_id == customer_id)
    if before is not None:
        moment, entry_id = parse_cursor(before)
        statement = statement.where(
            tuple_(Interaction.occurred_at, Interaction.id) < tuple_(moment, entry_id)
        )
    order = (Interaction.occurred_at.desc(), Interaction.id.desc())
    return statement.order_by(*order).limit(limit + 1)


async def get_history(
    session: AsyncSession, customer_id: int, limit: int, before: str | None = None
) -> Page:
    rows = (await session.execute(history_query(customer_id, limit, before))).all()
    entries = [_entry(row) for row in rows[:limit]]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return Page(entries, encode_cursor(last.occurred_at, last.id) if last else None)


def _entry(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "occurred_at": row.occurred_at,
        "channel": row.channel,
        "direction": row.direction,
        "kind": row.kind,
        "subject": row.subject,
        "text": row.text,
        "conversation_id": row.conversation_id,
        "sender": row.sender,
        "author_agent_id": row.author_agent_id,
    }
