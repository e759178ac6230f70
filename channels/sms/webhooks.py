"""Twilio's SMS webhooks: `POST /channels/sms/twilio` and its status callback.

Both are verified with Twilio's signature first (403, nothing stored, when it
is wrong; see `channels.twilio_signature`), and both answer 2xx only after the
hub committed what they carried, so a request Twilio has to send again loses
nothing; the MessageSid makes the repeat store nothing new.

An incoming message goes through `accept_inbound` like every contact; a
keyword (STOP, START, HELP, ...) then acts on the number (`keywords`). The
answer is always empty TwiML: whatever the hub says back goes through the
outbox, under the gate, never in the webhook's response.

    POST /channels/sms/twilio          form: MessageSid, From, To, Body, NumMedia, ...
      403 bad signature · 400 no From or no Body · 200 text/xml <Response/>
    POST /channels/sms/twilio/status   form (or signed JSON): MessageSid, MessageStatus,
                                       ErrorCode, ErrorMessage, To
      403 bad signature · 400 no MessageSid or status · 204
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from twilio.twiml.messaging_response import MessagingResponse

from channels.sms.inbound import IncomingSms, IncompleteWebhookError, parse_incoming
from channels.sms.keywords import KeywordHit, accept_keyword
from channels.sms.status import do_apply_status, parse_status
from channels.twilio_signature import check_twilio_signature, storable_text
from hub.api.deps import get_hub
from hub.context import Hub
from hub.intake import IngestResult, accept_inbound

router = APIRouter(prefix="/channels/sms", tags=["channels"])

IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
NO_REPLY = str(MessagingResponse())  # replies go through the outbox, never in the answer


@router.post("/twilio", response_class=Response)
async def incoming_message(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    """Twilio's incoming-message webhook: store the text, act on a keyword, answer TwiML."""
    form = await check_twilio_signature(hub, request)
    region = hub.settings.default_region
    try:
        incoming = parse_incoming(form or {}, request.headers.get(IDEMPOTENCY_HEADER), region)
    except IncompleteWebhookError as error:
        raise HTTPException(400, str(error)) from None
    result = await accept_inbound(hub, incoming.inbound)
    await _act_on_keyword(hub, incoming, result)
    return Response(NO_REPLY, media_type="text/xml")


async def _act_on_keyword(hub: Hub, incoming: IncomingSms, result: IngestResult) -> None:
    if incoming.keyword is None or incoming.number is None:
        return
    hit = KeywordHit(
        number=incoming.number,
        message_sid=incoming.message_sid,
        interaction_id=result.interaction_id,
        customer_id=result.customer_id,
        conversation_id=result.conversation_id,
        region=hub.settings.default_region,
        policy=hub.policy,
        help_text=hub.settings.sms_help_text,
    )
    await accept_keyword(hub, incoming.keyword, hit)


@router.post("/twilio/status", status_code=204, response_class=Response)
async def message_status(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    """Twilio's message status callback: the outbox row learns how its message fared."""
    form = await check_twilio_signature(hub, request)
    try:
        report = parse_status(form if form is not None else await _json_fields(request))
    except IncompleteWebhookError as error:
        raise HTTPException(400, str(error)) from None
    async with hub.work() as work:
        await do_apply_status(work, report, hub.settings.default_region)
    return Response(status_code=204)


async def _json_fields(request: Request) -> dict[str, Any]:
    """The fields of a JSON body (signed through `bodySHA256`), which must be an object."""
    try:
        fields = json.loads(await request.body())
    except (ValueError, RecursionError):  # nested past the recursion limit: unreadable too
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(fields, dict):
        raise HTTPException(400, "the JSON body must be an object")
    return {name: storable_text(str(value)) for name, value in fields.items() if value is not None}
