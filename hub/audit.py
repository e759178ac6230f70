"""The audit log: who changed what, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.models import AuditEntry


def record(
    session: AsyncSession,
    actor_id: int | None,
    action: str,
    entity: str,
    entity_id: int | None,
    **details: Any,
) -> None:
    session.add(
        AuditEntry(
            actor_agent_id=actor_id,
            action=action,
            entity=entity,
            entity_id=entity_id,
            details=details,
        )
    )
