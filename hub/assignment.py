"""Who takes a conversation: the interface routing implements, and the core's default.

The default is deliberately simple (the `routing` package replaces it): an A
customer's conversation goes to their key-account agent (with priority while a
complaint is open), everyone else's with an open complaint to the service
queue first, the rest to a queue by tier. Each decision says why it was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from hub.models import Conversation, Customer

COMPLAINT_PRIORITY = 10
TIER_QUEUES = {"A": "key_accounts", "B": "standard", "C": "pool"}


@dataclass(frozen=True, slots=True)
class Assignment:
    queue: str | None
    assignee_id: int | None
    priority: int
    reason: str
    sla_due_at: datetime | None = None


class Router(Protocol):
    async def assign(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        has_open_complaint: bool,
    ) -> Assignment: ...


class DefaultRouter:
    async def assign(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        has_open_complaint: bool,
    ) -> Assignment:
        tier = customer.tier or "C"
        priority = COMPLAINT_PRIORITY if has_open_complaint else 0
        if tier == "A" and customer.key_account_agent_id is not None:
            # The key account keeps its own manager, who sees the complaint first.
            why = ", open complaint first" if has_open_complaint else ""
            return Assignment(
                TIER_QUEUES["A"],
                customer.key_account_agent_id,
                priority,
                f"tier A: to the key-account agent{why}",
            )
        if has_open_complaint:
            return Assignment("service", None, priority, "open complaint: service first")
        queue = TIER_QUEUES.get(tier, "pool")
        return Assignment(queue, None, 0, f"tier {tier}: {queue}")
