"""Complaints: a case of their own, not a tag on a message.

A complaint belongs to a customer, may be linked to conversations on any
channel, and moves through

    open ──> in_progress ──> resolved
      ^           │              │
      └───────────┴──── reopen ──┘

`opened_at` is set once; `resolved_at` is set on resolving and cleared when it
is reopened. Every change is audited and emits an event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import record
from hub.context import Work
from hub.errors import InvalidInputError, NotFoundError
from hub.models import (
    Agent,
    Complaint,
    ComplaintConversation,
    Conversation,
    Customer,
    utcnow,
)
from hub.visibility import sees_customer

STATUSES = ("open", "in_progress", "resolved")
SEVERITIES = ("low", "normal", "high", "critical")


def complaint_view(complaint: Complaint) -> dict[str, Any]:
    return {
        "id": complaint.id,
        "customer_id": complaint.customer_id,
        "subject": complaint.subject,
        "description": complaint.description,
        "status": complaint.status,
        "severity": complaint.severity,
        "due_at": complaint.due_at,
        "opened_at": complaint.opened_at,
        "resolved_at": complaint.resolved_at,
        "is_overdue": bool(
            complaint.due_at and complaint.status != "resolved" and complaint.due_at < utcnow()
        ),
    }


async def get_complaint(session: AsyncSession, complaint_id: int) -> Complaint:
    complaint = await session.get(Complaint, complaint_id)
    if complaint is None:
        raise NotFoundError(f"no complaint {complaint_id}")
    return complaint


async def linked_conversations(session: AsyncSession, complaint_id: int) -> list[int]:
    statement = (
        select(ComplaintConversation.conversation_id)
        .where(ComplaintConversation.complaint_id == complaint_id)
        .order_by(ComplaintConversation.conversation_id)
    )
    return list(await session.scalars(statement))


async def list_complaints(
    session: AsyncSession,
    limit: int,
    before: int | None = None,
    status: str | None = None,
    customer_id: int | None = None,
    seen_by: Agent | None = None,
) -> tuple[list[Complaint], int | None]:
    """A page of complaints, newest first, and the id to pass as `before` for the next;
    with `seen_by`, only those of customers that agent may see."""
    if status is not None and status not in STATUSES:
        raise InvalidInputError(f"status must be one of {', '.join(STATUSES)}", field="status")
    statement = select(Complaint)
    if seen_by is not None:
        statement = statement.where(sees_customer(seen_by, Complaint.customer_id))
    if status is not None:
        statement = statement.where(Complaint.status == status)
    if customer_id is not None:
        statement = statement.where(Complaint.customer_id == customer_id)
    if before is not None:
        statement = statement.where(Complaint.id < before)
    rows = list(await session.scalars(statement.order_by(Complaint.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    return rows[:limit], rows[limit - 1].id if more else None


async def do_open_complaint(
    work: Work,
    actor_id: int | None,
    customer_id: int,
    subject: str,
    description: str | None = None,
    severity: str = "normal",
    due_at: datetime | None = None,
    conversation_ids: tuple[int, ...] = (),
) -> Complaint:
    if await work.session.get(Customer, customer_id) is None:
        raise NotFoundError(f"no customer {customer_id}", field="customer_id")
    check_severity(severity)
    complaint = Complaint(
        customer_id=customer_id,
        subject=subject,
        description=description,
        severity=severity,
        due_at=due_at,
        created_by_agent_id=actor_id,
    )
    work.session.add(complaint)
    await work.session.flush()
    for conversation_id in conversation_ids:
        await do_link_conversation(work, complaint, conversation_id)
    record(work.session, actor_id, "complaint.opened", "complaint", complaint.id)
    work.emit("complaint.opened", complaint_id=complaint.id, customer_id=customer_id)
    return complaint


async def do_link_conversation(work: Work, complaint: Complaint, conversation_id: int) -> None:
    conversation = await work.session.get(Conversation, conversation_id)
    if conversation is None or conversation.customer_id != complaint.customer_id:
        raise InvalidInputError(
            f"conversation {conversation_id} is not one of this customer's",
            field="conversation_ids",
        )
    link = await work.session.get(ComplaintConversation, (complaint.id, conversation_id))
    if link is None:
        work.session.add(
            ComplaintConversation(complaint_id=complaint.id, conversation_id=conversation_id)
        )


async def do_update_complaint(
    work: Work, actor_id: int | None, complaint: Complaint, changes: dict[str, Any]
) -> Complaint:
    if "status" in changes:
        _move(complaint, changes.pop("status"))
    if "severity" in changes:
        check_severity(changes["severity"])
    for name in ("subject", "description", "severity", "due_at"):
        if name in changes:
            setattr(complaint, name, changes[name])
    for conversation_id in changes.get("conversation_ids") or ():
        await do_link_conversation(work, complaint, conversation_id)
    record(
        work.session,
        actor_id,
        "complaint.updated",
        "complaint",
        complaint.id,
        status=complaint.status,
    )
    event = "complaint.resolved" if complaint.status == "resolved" else "complaint.updated"
    work.emit(
        event, complaint_id=complaint.id, customer_id=complaint.customer_id, status=complaint.status
    )
    return complaint


def _move(complaint: Complaint, status: str) -> None:
    if status not in STATUSES:
        raise InvalidInputError(f"status must be one of {', '.join(STATUSES)}", field="status")
    if status == "resolved" and complaint.status != "resolved":
        complaint.resolved_at = utcnow()
    elif status != "resolved":
        complaint.resolved_at = None
    complaint.status = status


def check_severity(severity: str) -> None:
    if severity not in SEVERITIES:
        raise InvalidInputError(
            f"severity must be one of {', '.join(SEVERITIES)}", field="severity"
        )
