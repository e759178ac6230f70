"""Twilio's voice webhooks: the incoming call, its status callbacks, and what its TwiML asks.

    POST /channels/voice/twilio             incoming call: stored through intake
                                            (external id = CallSid), screen pop,
                                            TwiML that routes it (see call_plan)
    POST /channels/voice/twilio/status      call status callback: status, duration,
                                            who answered; a missed call of a known
                                            customer opens a callback conversation
    POST /channels/voice/twilio/dial-ended  <Dial action>: hang up when the agent
                                            took the call, else the queue or voicemail
    POST /channels/voice/twilio/queue-left  <Enqueue action>: bridged means answered
    POST /channels/voice/twilio/voicemail   <Record action> and recording status

Every request must carry Twilio's signature (403, nothing stored, otherwise).
Twilio retries and reorders: a repeated incoming call stores nothing new and
gets the same answer; reports apply only forwards (`hub.calls`).
A caller number that does not parse or is withheld ("anonymous", "+266696687",
...) is never an error: the call is stored under a one-off identity of its own,
flagged `unparseable_number`, and routed like any unknown caller (the pool).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from starlette.datastructures import FormData

from channels.twilio_signature import check_twilio_signature
from channels.voice.call_plan import ENGLISH, CallPlan, CallSituation, plan_call
from channels.voice.twiml import (
    CallbackUrls,
    render_answer,
    render_fallback,
    render_goodbye,
    render_hangup,
)
from hub.api.deps import get_hub
from hub.calls import (
    CallFacts,
    CallRecord,
    CallReport,
    do_answer_call,
    do_record_call_report,
    do_record_voicemail,
    find_call,
    read_call_facts,
)
from hub.context import Hub
from hub.errors import InvalidInputError
from hub.identity import normalise_phone
from hub.intake import accept_inbound
from hub.values import IdentityKind, Inbound

router = APIRouter(prefix="/channels/voice", tags=["channels"])

ANSWERED_DIAL_STATUSES = frozenset({"answered", "completed"})
WITHHELD_NAME = "Withheld number"
MISSED_CALL_SUBJECT = "Missed call"
MISSED_CALL_TEXT = "Missed call – please call back"
MAX_RAW_NUMBER = 100
# What carriers hand Twilio for a withheld caller: the words spelled on a phone
# keypad. Most do not parse anyway; "UNAVAILABLE" is a possible Chinese number.
WITHHELD_NUMBERS = frozenset(
    {
        "+266696687",  # ANONYMOUS
        "+7378742833",  # RESTRICTED
        "+2562533",  # BLOCKED
        "+8656696",  # UNKNOWN
        "+86282452253",  # UNAVAILABLE
    }
)
TWIML = "text/xml"


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return (value.strip() or None) if isinstance(value, str) else None


def _required(form: FormData, name: str) -> str:
    value = _field(form, name)
    if value is None:
        raise HTTPException(400, f"{name} is missing")
    return value


def _seconds(form: FormData, name: str) -> int | None:
    value = _field(form, name)
    # isdigit() alone passes "4²", which int() refuses; a long run of digits is no duration.
    is_number = value is not None and value.isascii() and value.isdigit() and len(value) < 10
    return int(value) if is_number else None


def _reported_at(form: FormData) -> datetime:
    """Twilio's `Timestamp` (RFC 2822), or now when it is missing or unreadable."""
    try:
        moment = parsedate_to_datetime(_field(form, "Timestamp") or "")
    except (TypeError, ValueError, OverflowError):  # a year or zone past what datetime holds
        return datetime.now(UTC)
    return moment if moment.tzinfo is not None else datetime.now(UTC)


async def _verified_form(hub: Hub, request: Request) -> FormData:
    form = await check_twilio_signature(hub, request)
    if form is None:
        raise HTTPException(400, "Twilio posts voice webhooks form-encoded")
    return form


def _twiml(markup: str) -> Response:
    return Response(markup, media_type=TWIML)


def _urls(hub: Hub) -> CallbackUrls:
    return CallbackUrls.under(f"{hub.settings.public_url}{router.prefix}/twilio")


def _e164(raw: str, region: str) -> str | None:
    if raw in WITHHELD_NUMBERS:
        return None
    try:
        return normalise_phone(raw, region)
    except InvalidInputError:
        return None


def parse_caller(raw: str, call_sid: str, region: str) -> tuple[IdentityKind, str, dict[str, Any]]:
    """The caller's identity: the number in E.164, or a one-off flagged identity.

    Withheld numbers all look alike, so one shared identity would thread
    strangers' calls into one history; each such call is a caller of its own.
    """
    number = _e164(raw, region)
    if number is not None:
        return "phone", number, {}
    return "chat", f"phone:{raw[:MAX_RAW_NUMBER]}:{call_sid}", {"unparseable_number": raw}


def parse_incoming_call(form: FormData, region: str) -> Inbound:
    """Twilio's incoming-call form as one `Inbound`; 400 without CallSid or From."""
    call_sid, raw_from = _required(form, "CallSid"), _required(form, "From")
    kind, sender, flags = parse_caller(raw_from, call_sid, region)
    return Inbound(
        channel="voice",
        sender_kind=kind,
        sender=sender,
        external_id=call_sid,
        kind="call",
        text=f"Call from {raw_from}",
        sender_name=_field(form, "CallerName") or (WITHHELD_NAME if flags else None),
        metadata={
            "status": _field(form, "CallStatus") or "ringing",
            "to": _field(form, "To"),
            "twilio_direction": _field(form, "Direction"),
            **flags,
        },
    )


def parse_status_report(form: FormData) -> CallReport:
    """A status callback; `DialCallStatus`/`Called` say whether a dialled agent took it."""
    called = _field(form, "Called") or ""
    return CallReport(
        at=_reported_at(form),
        status=_field(form, "CallStatus"),
        duration=_seconds(form, "CallDuration"),
        answered=_field(form, "DialCallStatus") in ANSWERED_DIAL_STATUSES,
        answered_by=called.removeprefix("client:") if called.startswith("client:") else None,
    )


def missed_call(call_sid: str, record: CallRecord) -> Inbound:
    """The contact that opens the callback conversation for a missed call, once per call."""
    return Inbound(
        channel="voice",
        sender_kind="phone",
        sender=record.sender or "",
        external_id=f"{call_sid}:missed",
        thread_key=f"callback:{call_sid}",
        kind="missed_call",
        subject=MISSED_CALL_SUBJECT,
        text=MISSED_CALL_TEXT,
        metadata={"call_sid": call_sid, "call_status": record.meta.get("status")},
    )


def _situation(facts: CallFacts, assignee_tried: bool = False) -> CallSituation:
    return CallSituation(
        language=facts.language,
        assignee_id=facts.assignee_id,
        assignee_presence=facts.assignee_presence,
        others_online=facts.others_online,
        queue=facts.queue,
        assignee_tried=assignee_tried,
    )


def _choose(facts: CallFacts) -> dict[str, Any]:
    return plan_call(_situation(facts)).as_dict()


@router.post("/twilio", response_class=Response)
async def incoming_call(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    """Store the call, pop the caller's card to the console, answer TwiML that routes it."""
    form = await _verified_form(hub, request)
    inbound = parse_incoming_call(form, hub.settings.default_region)
    await accept_inbound(hub, inbound)
    async with hub.work() as work:
        stored = await do_answer_call(
            work, inbound.external_id, _choose, hub.settings.card_history_size
        )
    if stored is None:  # erased between the two transactions
        return _twiml(render_hangup())
    return _twiml(render_answer(CallPlan.from_dict(stored), _urls(hub)))


@router.post("/twilio/status", status_code=204, response_class=Response)
async def call_status(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    """Record a status report; open the callback conversation a missed call is due."""
    form = await _verified_form(hub, request)
    call_sid = _required(form, "CallSid")
    async with hub.work() as work:
        record = await do_record_call_report(work, call_sid, parse_status_report(form))
    if record is not None and record.callback_due:
        await accept_inbound(hub, missed_call(call_sid, record))
    return Response(status_code=204)


async def _fallback_plan(hub: Hub, call_sid: str) -> CallPlan | None:
    """How to go on after the assignee did not take the call: the queue, or voicemail."""
    async with hub.sessions() as session:
        call = await find_call(session, call_sid)
        if call is None:
            return None
        facts = await read_call_facts(session, call)
    return plan_call(_situation(facts, assignee_tried=True))


@router.post("/twilio/dial-ended", response_class=Response)
async def dial_ended(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    """The dialled agent took the call (hang up when it ends) or did not (fall back)."""
    form = await _verified_form(hub, request)
    call_sid = _required(form, "CallSid")
    if _field(form, "DialCallStatus") in ANSWERED_DIAL_STATUSES:
        report = CallReport(datetime.now(UTC), answered=True)
        async with hub.work() as work:
            await do_record_call_report(work, call_sid, report)
        return _twiml(render_hangup())
    plan = await _fallback_plan(hub, call_sid)
    return _twiml(render_fallback(plan, _urls(hub)) if plan else render_hangup())


@router.post("/twilio/queue-left", response_class=Response)
async def queue_left(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    """A caller left the queue: bridged to an agent, hung up, or sent on to voicemail."""
    form = await _verified_form(hub, request)
    call_sid, result = _required(form, "CallSid"), _field(form, "QueueResult")
    if result == "bridged":
        queue = request.query_params.get("queue", "")
        report = CallReport(datetime.now(UTC), answered=True, answered_by=f"queue:{queue}")
        async with hub.work() as work:
            await do_record_call_report(work, call_sid, report)
    if result in ("bridged", "hangup"):
        return _twiml(render_hangup())
    async with hub.sessions() as session:
        call = await find_call(session, call_sid)
        language = _language(call.meta if call else {})
    return _twiml(render_fallback(CallPlan("queue_left", "voicemail", language), _urls(hub)))


def _language(meta: dict[str, Any]) -> str:
    return meta.get("plan", {}).get("language", ENGLISH)


@router.post("/twilio/voicemail", response_class=Response)
async def voicemail(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    """Keep the recording's URL and length on the call; thank the caller and hang up."""
    form = await _verified_form(hub, request)
    call_sid = _required(form, "CallSid")
    recording = {
        "url": _field(form, "RecordingUrl"),
        "duration": _seconds(form, "RecordingDuration"),
        "sid": _field(form, "RecordingSid"),
        "status": _field(form, "RecordingStatus"),
    }
    async with hub.work() as work:
        call = await do_record_voicemail(work, call_sid, recording)
        language = _language(call.meta if call else {})
    return _twiml(render_goodbye(language))
