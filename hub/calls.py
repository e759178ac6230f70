"""Calls: what the hub keeps about a phone call after intake stored it.

A call is an interaction (channel "voice", kind "call", external id the
CallSid, unique like every external id). What the phone system reports later
lives in the interaction's `meta`:

    status        the call's status, applied only forwards (CALL_STAGES):

                      queued/initiated ──> ringing ──> in-progress ──┬──> completed
                                                                     └──> busy | no-answer
                                                                          | failed | canceled

                  the first final status wins; repeats and stragglers change nothing
    duration      seconds, from the first report that carries one
    answered_by   who took the call (a client identity such as "agent-7", or
                  "queue:pool"); set once, never cleared
    ended_at      when the final status was reported (ISO 8601)
    plan          how the call was answered, stored once: a retried webhook gets
                  the same answer and sends no second screen pop
    voicemail     url, duration, sid and status of the message the caller left

A call is missed when it ended busy, unanswered, failed or cancelled, or
completed without anyone taking it (a voicemail counts: it promises a
callback). A missed call of a known customer (not a prospect, and a number
that parsed) is due a callback; the channel opens that conversation through
intake, once per call thanks to its external id.

Each `do_*` runs in the caller's unit of work and locks the call's row, so
concurrent reports about one call apply one after the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.context import Work
from hub.customers import get_card
from hub.models import Agent, Conversation, Customer, Interaction

CHANNEL = "voice"
CALL_STAGES = {
    "queued": 0,
    "initiated": 0,
    "ringing": 1,
    "in-progress": 2,
    "completed": 3,
    "busy": 3,
    "no-answer": 3,
    "failed": 3,
    "canceled": 3,
}
FINAL_STAGE = 3
MISSED_STATUSES = frozenset({"busy", "no-answer", "failed", "canceled"})


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What deciding how to answer a call needs, read in one place."""

    language: str | None
    assignee_id: int | None
    assignee_presence: str | None
    others_online: bool
    queue: str | None


@dataclass(frozen=True, slots=True)
class CallReport:
    """One report about a call; `answered` without `answered_by` means its planned target."""

    at: datetime
    status: str | None = None
    duration: int | None = None
    answered: bool = False
    answered_by: str | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call as a report left it, and whether it is due a callback."""

    interaction_id: int
    customer_id: int
    sender: str | None
    meta: dict[str, Any]
    callback_due: bool


async def find_call(session: AsyncSession, call_sid: str, lock: bool = False) -> Interaction | None:
    """The call stored under this CallSid, if any; `lock` holds its row to the commit."""
    statement = select(Interaction).where(
        Interaction.channel == CHANNEL, Interaction.external_id == call_sid
    )
    if lock:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).first()


async def _presence(session: AsyncSession, agent_id: int | None) -> str | None:
    agent = await session.get(Agent, agent_id) if agent_id is not None else None
    if agent is None:
        return None
    return agent.presence if agent.is_active else "offline"


async def is_anyone_else_online(session: AsyncSession, agent_id: int | None) -> bool:
    """Whether an active agent other than `agent_id` (None: any agent) is online."""
    online = (Agent.presence == "online") & Agent.is_active.is_(True)
    if agent_id is not None:
        online &= Agent.id != agent_id
    return bool(await session.scalar(select(exists().where(online))))


async def read_call_facts(session: AsyncSession, call: Interaction) -> CallFacts:
    """The customer's language, the conversation's assignee and queue, and who else is online."""
    customer = await session.get(Customer, call.customer_id)
    conversation = (
        await session.get(Conversation, call.conversation_id) if call.conversation_id else None
    )
    assignee_id = conversation.assignee_id if conversation else None
    return CallFacts(
        language=customer.language if customer else None,
        assignee_id=assignee_id,
        assignee_presence=await _presence(session, assignee_id),
        others_online=await is_anyone_else_online(session, assignee_id),
        queue=conversation.queue if conversation else None,
    )


async def do_answer_call(
    work: Work,
    call_sid: str,
    choose: Callable[[CallFacts], dict[str, Any]],
    card_history_size: int,
) -> dict[str, Any] | None:
    """The call's plan: the stored one, or one chosen now, stored, and screen-popped.

    None when no call has this CallSid. The `call.ringing` event carries the
    customer's card, so the agent sees who calls before answering.
    """
    call = await find_call(work.session, call_sid, lock=True)
    if call is None:
        return None
    if "plan" in call.meta:
        return call.meta["plan"]
    plan = choose(await read_call_facts(work.session, call))
    call.meta = {**call.meta, "plan": plan}
    card = await get_card(work.session, call.customer_id, card_history_size)
    work.emit(
        "call.ringing",
        call_sid=call_sid,
        caller=call.meta.get("unparseable_number") or call.sender,
        customer_id=call.customer_id,
        conversation_id=call.conversation_id,
        interaction_id=call.id,
        routed_to=plan.get("target"),
        agent_id=plan.get("agent_id"),
        queue=plan.get("queue"),
        rule=plan.get("rule"),
        card=to_jsonable_python(card),
    )
    return plan


def _is_forward(current: str | None, reported: str | None) -> bool:
    stage = CALL_STAGES.get(reported or "")
    return stage is not None and stage > CALL_STAGES.get(current or "", -1)


def apply_report(meta: dict[str, Any], report: CallReport) -> dict[str, Any]:
    """The call's meta with the report applied forwards only; see the module docstring."""
    updated = dict(meta)
    if _is_forward(meta.get("status"), report.status):
        updated["status"] = report.status
        if CALL_STAGES[report.status or ""] == FINAL_STAGE:
            updated["ended_at"] = report.at.isoformat()
    if report.duration is not None and "duration" not in meta:
        updated["duration"] = report.duration
    if report.answered and not meta.get("answered_by"):
        planned = meta.get("plan", {}).get("target")
        updated["answered_by"] = report.answered_by or planned or "unknown"
    return updated


def is_missed(meta: dict[str, Any]) -> bool:
    status = meta.get("status")
    return status in MISSED_STATUSES or (status == "completed" and not meta.get("answered_by"))


async def is_callback_due(session: AsyncSession, call: Interaction) -> bool:
    """Missed, from a number that parsed, of a customer who is not a prospect."""
    if not is_missed(call.meta) or call.meta.get("unparseable_number"):
        return False
    customer = await session.get(Customer, call.customer_id)
    return customer is not None and not customer.is_prospect


async def do_record_call_report(work: Work, call_sid: str, report: CallReport) -> CallRecord | None:
    """Apply one report to the call; None when no call has this CallSid."""
    call = await find_call(work.session, call_sid, lock=True)
    if call is None:
        return None
    meta = apply_report(call.meta, report)
    if meta != call.meta:
        call.meta = meta
        work.emit(
            "call.status_reported",
            call_sid=call_sid,
            interaction_id=call.id,
            customer_id=call.customer_id,
            conversation_id=call.conversation_id,
            status=meta.get("status"),
            answered_by=meta.get("answered_by"),
        )
    due = await is_callback_due(work.session, call)
    return CallRecord(call.id, call.customer_id, call.sender, dict(meta), due)


async def do_record_voicemail(
    work: Work, call_sid: str, voicemail: dict[str, Any]
) -> Interaction | None:
    """Keep what is known of the caller's recording; later reports fill, never erase."""
    call = await find_call(work.session, call_sid, lock=True)
    if call is None:
        return None
    known = {name: value for name, value in voicemail.items() if value is not None}
    merged = {**call.meta.get("voicemail", {}), **known}
    if merged != call.meta.get("voicemail"):
        call.meta = {**call.meta, "voicemail": merged}
        work.emit(
            "call.voicemail_recorded",
            call_sid=call_sid,
            interaction_id=call.id,
            customer_id=call.customer_id,
            conversation_id=call.conversation_id,
        )
    return call
