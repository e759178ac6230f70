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

from typing import Any

from channels.webform.texts import DEFAULT_LANGUAGE, LANGUAGES, text
from hub.context import Work
from hub.gate import Policy
from hub.intake import IngestResult
from hub.models import Interaction
from hub.outbox import Message, enqueue
from hub.values import Inbound
from templates import render_message

TEMPLATE = "webform_confirmation"


def reference_of(result: IngestResult) -> str:
    return f"WF-{result.conversation_id or 0}-{result.interaction_id}"


async def queue_confirmation(
    work: Work, policy: Policy, inbound: Inbound, result: IngestResult
) -> bool:
    """Queue the confirmation e-mail of a stored submission; whether one may go out.

    It runs in the unit of work that stores the submission (`accept_inbound_then`),
    so the two commit together: a crash leaves neither. A repeat of the submission
    (the same form token or `submission_id`) stores nothing new and comes here
    again, where the idempotency key `webform-confirmation:<external id>` is taken
    and nothing more is queued. The address and texts are those of the stored
    submission (for a new one, what was just stored from `inbound`; for a repeat,
    read back), never a repeat's own fields, so a repeat cannot send the
    confirmation elsewhere. Without an e-mail address there is none.
    """
    meta = inbound.metadata if not result.duplicate else await _stored_meta(work, result)
    if not meta.get("email"):
        return False
    row = await enqueue(work, _message(meta, inbound.external_id, result), policy)
    return row.status != "blocked"


async def _stored_meta(work: Work, result: IngestResult) -> dict[str, Any]:
    interaction = await work.session.get(Interaction, result.interaction_id)
    return interaction.meta if interaction is not None else {}


def _message(meta: dict[str, Any], external_id: str, result: IngestResult) -> Message:
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
        idempotency_key=f"webform-confirmation:{external_id}",
        channel="email",
        recipient=meta["email"],
        purpose="service",
        subject=subject,
        text=body,
        customer_id=result.customer_id,
        conversation_id=result.conversation_id,
        interaction_id=result.interaction_id,
    )
