"""SMS keywords: a message that is nothing but an opt-out, opt-in or help word acts on its number.

A keyword is the whole message, trimmed, in any case (as carriers and Twilio
match them). The rules, in order; the first whose words match decides:

    rule   words                                     action
    stop   STOP STOPALL UNSUBSCRIBE CANCEL END QUIT  an `sms_stop` block (scope all) on the number
           REVOKE OPTOUT
    start  START YES UNSTOP                          lift the number's active `sms_stop` block
    help   HELP INFO                                 queue OMNIHUB_SMS_HELP_TEXT (service)

The message itself is stored in the history like any other, before its action
runs. Each action is idempotent (an active block is not added twice, lifting
finds the active one, the help reply is keyed by the MessageSid), so a
webhook Twilio retries acts again harmlessly; and an action runs only while
no newer keyword from the same customer is stored, so a late retry of a STOP
cannot undo the START that followed it. The help text passes the gate like
any message: a number under a STOP block gets none.

The help text is the setting `OMNIHUB_SMS_HELP_TEXT`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select

from hub.blocks import do_add_block, do_lift_block, find_active_block
from hub.context import Hub, Work
from hub.gate import Policy
from hub.models import Interaction
from hub.outbox import Message, enqueue


@dataclass(frozen=True, slots=True)
class KeywordHit:
    """A keyword message the hub has stored, and what its action needs."""

    number: str  # E.164
    message_sid: str
    interaction_id: int
    customer_id: int
    conversation_id: int | None
    region: str
    policy: Policy
    help_text: str


Action = Callable[[Work, KeywordHit], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class KeywordRule:
    name: str
    words: frozenset[str]
    action: Action


async def do_stop(work: Work, hit: KeywordHit) -> None:
    note = f"SMS opt-out keyword (MessageSid {hit.message_sid})"
    await do_add_block(work, None, "phone", hit.number, "sms_stop", hit.region, "all", note)


async def do_start(work: Work, hit: KeywordHit) -> None:
    block = await find_active_block(work.session, "phone", hit.number, "sms_stop", "all")
    if block is not None:
        await do_lift_block(work, None, block.id)


async def do_send_help(work: Work, hit: KeywordHit) -> None:
    message = Message(
        idempotency_key=f"sms-help:{hit.message_sid}",
        channel="sms",
        recipient=hit.number,
        purpose="service",
        text=hit.help_text,
        customer_id=hit.customer_id,
        conversation_id=hit.conversation_id,
    )
    await enqueue(work, message, hit.policy)


KEYWORD_RULES: tuple[KeywordRule, ...] = (
    KeywordRule(
        "stop",
        frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}),
        do_stop,
    ),
    KeywordRule("start", frozenset({"START", "YES", "UNSTOP"}), do_start),
    KeywordRule("help", frozenset({"HELP", "INFO"}), do_send_help),
)


def find_keyword(text: str | None) -> KeywordRule | None:
    word = (text or "").strip().upper()
    return next((rule for rule in KEYWORD_RULES if word in rule.words), None)


async def has_newer_keyword(work: Work, hit: KeywordHit) -> bool:
    """Whether a keyword the same number sent later is stored already (it decides, then)."""
    later = await work.session.scalars(
        select(Interaction.text).where(
            Interaction.customer_id == hit.customer_id,
            Interaction.id > hit.interaction_id,
            Interaction.channel == "sms",
            Interaction.direction == "inbound",
            Interaction.sender == hit.number,
        )
    )
    return any(find_keyword(text) is not None for text in later)


async def accept_keyword(hub: Hub, rule: KeywordRule, hit: KeywordHit) -> None:
    """Run the keyword's action in a transaction of its own, unless a newer keyword decided."""
    async with hub.work() as work:
        if not await has_newer_keyword(work, hit):
            await rule.action(work, hit)
