"""The console's two lists: my conversations, and the waiting ones in my queues.

Both hold open conversations the agent may see (`hub.visibility`), the most
urgent first: priority (an open complaint raises it) then the oldest. They are
keyset-paged on (priority, id), never offset. Each row carries what the agent
decides by: channel, customer, tier, open complaint, how long the customer has
waited for an answer, and the SLA due time. One statement fills a page,
however long it is, and one finds a single row.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub.models import Agent, Complaint, Conversation, Customer, Interaction, utcnow
from hub.visibility import queues_of, sees_everything

PAGE = 50
SLA_SOON = timedelta(minutes=15)
SECTIONS = ("mine", "queue")


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    section: str
    channel: str
    subject: str | None
    customer_id: int
    customer_name: str
    tier: str | None
    complaint: bool
    priority: int
    queue: str | None
    assignee_id: int | None
    assignee_name: str | None
    waiting_since: datetime | None
    sla_due_at: datetime | None

    @property
    def sla_state(self) -> str:
        return sla_state(self.sla_due_at, self.waiting_since is not None)

    @property
    def cursor(self) -> str:
        return f"{self.priority}.{self.id}"


def sla_state(due: datetime | None, waiting: bool, now: datetime | None = None) -> str:
    """`none`, `ok`, `soon` (within 15 minutes) or `breached`; answered means no clock runs."""
    if due is None or not waiting:
        return "none"
    left = due - (now or utcnow())
    return "breached" if left <= timedelta(0) else "soon" if left <= SLA_SOON else "ok"


def section_of(agent: Agent, conversation: Conversation) -> str | None:
    """Where an open conversation shows for the agent: `mine`, `queue`, or nowhere."""
    if conversation.status != "open":
        return None
    if conversation.assignee_id == agent.id:
        return "mine"
    queues = queues_of(agent)
    in_my_queues = queues is None or conversation.queue in queues
    return "queue" if conversation.assignee_id is None and in_my_queues else None


def parse_cursor(raw: str | None) -> tuple[int, int] | None:
    if not raw:
        return None
    priority, _, ident = raw.partition(".")
    try:
        return int(priority), int(ident)
    except ValueError:
        return None


# The statements are built once per shape, the agent and the cursor bound as
# parameters: building and hashing a statement this size costs more than running
# it (see hub/customers.py, which does the same for the card).
_AGENT = bindparam("agent_id")
_TEAMS = bindparam("teams", expanding=True)
_AFTER_PRIORITY, _AFTER_ID = bindparam("after_priority"), bindparam("after_id")
_ONE = bindparam("conversation_id")


def _waiting_since() -> Any:
    """The first customer message after the last answer (NULL: answered), per conversation."""
    answer, message = aliased(Interaction), aliased(Interaction)
    last_answer = (
        select(func.max(answer.occurred_at))
        .where(answer.conversation_id == Conversation.id, answer.direction == "outbound")
        .scalar_subquery()
    )
    return (
        select(func.min(message.occurred_at))
        .where(
            message.conversation_id == Conversation.id,
            message.direction == "inbound",
            or_(last_answer.is_(None), message.occurred_at > last_answer),
        )
        .scalar_subquery()
    )


@functools.cache
def rows_statement(everything: bool, section: str | None, paged: bool, one: bool) -> Select[Any]:
    """A list's rows: the conversation, its customer, complaint, assignee and waiting time.

    `everything`: the agent sees every queue (else `teams` binds theirs); `section`
    `mine`, `queue` or None (any); `paged` continues after a cursor; `one` a single id.
    """
    open_complaint = exists().where(
        Complaint.customer_id == Conversation.customer_id, Complaint.status != "resolved"
    )
    statement = (
        select(
            Conversation,
            Customer.name,
            Customer.tier,
            open_complaint.label("complaint"),
            Agent.name.label("assignee_name"),
            _waiting_since().label("waiting_since"),
        )
        .join(Customer, Customer.id == Conversation.customer_id)
        .outerjoin(Agent, Agent.id == Conversation.assignee_id)
        .where(Conversation.status == "open")
    )
    if not everything:  # hub.visibility.visible_to, with the agent as parameters
        statement = statement.where(
            or_(Conversation.assignee_id == _AGENT, Conversation.queue.in_(_TEAMS))
        )
    if section == "mine":
        statement = statement.where(Conversation.assignee_id == _AGENT)
    elif section == "queue":
        statement = statement.where(Conversation.assignee_id.is_(None))
    if paged:
        statement = statement.where(
            or_(
                Conversation.priority < _AFTER_PRIORITY,
                and_(Conversation.priority == _AFTER_PRIORITY, Conversation.id > _AFTER_ID),
            )
        )
    if one:
        statement = statement.where(Conversation.id == _ONE)
    return statement.order_by(Conversation.priority.desc(), Conversation.id).limit(PAGE + 1)


def _parameters(agent: Agent, **more: Any) -> dict[str, Any]:
    return {"agent_id": agent.id, "teams": list(agent.teams) or [""], **more}


def _aware(moment: Any) -> datetime:
    # Aggregates bypass the column type, so SQLite hands back a naive string or datetime.
    parsed = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


async def list_rows(
    session: AsyncSession, agent: Agent, section: str, after: str | None = None
) -> tuple[list[Row], str | None]:
    """One page of a section and the cursor of the next (None: no more)."""
    cursor = parse_cursor(after)
    statement = rows_statement(sees_everything(agent), section, cursor is not None, False)
    bound = _parameters(agent)
    if cursor is not None:
        bound.update(after_priority=cursor[0], after_id=cursor[1])
    found = (await session.execute(statement, bound)).all()
    rows = [build_row(found_row, section) for found_row in found[:PAGE]]
    return rows, rows[-1].cursor if len(found) > PAGE else None


async def find_row(session: AsyncSession, agent: Agent, conversation_id: int) -> Row | None:
    """The conversation's row as this agent's list shows it; None when it is not listed."""
    statement = rows_statement(sees_everything(agent), None, False, True)
    bound = _parameters(agent, conversation_id=conversation_id)
    found = (await session.execute(statement, bound)).first()
    section = section_of(agent, found[0]) if found is not None else None
    return build_row(found, section) if section is not None else None


def build_row(found: Any, section: str) -> Row:
    conversation = found[0]
    return Row(
        id=conversation.id,
        section=section,
        channel=conversation.channel,
        subject=conversation.subject,
        customer_id=conversation.customer_id,
        customer_name=found.name or "",
        tier=found.tier,
        complaint=bool(found.complaint),
        priority=conversation.priority,
        queue=conversation.queue,
        assignee_id=conversation.assignee_id,
        assignee_name=found.assignee_name,
        waiting_since=_aware(found.waiting_since) if found.waiting_since else None,
        sla_due_at=conversation.sla_due_at,
    )
