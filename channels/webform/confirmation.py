"""The submitter's confirmation: a stable reference, and an e-mail queued once in the outbox.

The reference `WF-<conversation id>-<interaction id>` comes from the stored
submission, so a repeat of the submission gets the same one. The e-mail's
subject also carries `[#<conversation id>]`, so a reply to it threads into
the submission's conversation (the e-mail channel's subject reference).

The e-mail echoes nothing the visitor typed (no name, subject or message):
a contact form that mails free text to any address typed into it is a relay
for spam. It says only the reference and the topic, from our own texts.
"""

from __future__ import annotations

from channels.webform.texts import DEFAULT_LANGUAGE, LANGUAGES, text
from hub.context import Hub
from hub.intake import IngestResult
from hub.models import Interaction
from hub.outbox import Message, enqueue
from templates import render_message

TEMPLATE = "webform_confirmation"


def reference_of(result: IngestResult) -> str:
    return f"WF-{result.conversation_id or 0}-{result.interaction_id}"


async def enqueue_confirmation(hub: Hub, result: IngestResult) -> bool:
    """Queue the confirmation e-mail of a stored submission; whether one may go out.

    `accept_inbound` commits the submission in a transaction of its own, so the
    confirmation is queued in a second one right after, under the idempotency key
    `webform-confirmation:<external id>`. A crash between the two leaves the
    submission stored without a confirmation; the visitor's retry (the same form
    token) stores nothing new, comes here again and queues it then, and any
    further retry finds the key taken and queues nothing. Everything is read from
    the stored submission, never from the retry's own fields, so a retry cannot
    send the confirmation elsewhere. Without an e-mail address there is none.
    """
    async with hub.work() as work:
        interaction = await work.session.get(Interaction, result.interaction_id)
        if interaction is None or not interaction.meta.get("email"):
            return False
        row = await enqueue(work, _message(interaction, result), hub.policy)
        return row.status != "blocked"


def _message(interaction: Interaction, result: IngestResult) -> Message:
    meta = interaction.meta
    language = meta.get("language") if meta.get("language") in LANGUAGES else DEFAULT_LANGUAGE
    reference = reference_of(result)
    subject, body = render_message(
        TEMPLATE,
        language,
        {
            "reference": reference,
            "conversation_id": result.conversation_id,
            "topic": text(language, f"topic_{meta.get('topic', 'other')}"),
        },
    )
    return Message(
        idempotency_key=f"webform-confirmation:{interaction.external_id}",
        channel="email",
        recipient=meta["email"],
        purpose="service",
        subject=subject,
        text=body,
        customer_id=result.customer_id,
        conversation_id=result.conversation_id,
        interaction_id=result.interaction_id,
    )
