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

from dataclasses import dataclass
from typing import Any

from channels.webform.texts import DEFAULT_LANGUAGE, LANGUAGES, text
from hub.context import Work
from hub.gate import Policy
from hub.intake import IngestResult
from hub.models import Interaction
from hub.outbox import Message, enqueue_many
from hub.values import Inbound
from templates import render_message

TEMPLATE = "webform_confirmation"


def reference_of(result: IngestResult) -> str:
    return f"WF-{result.conversation_id or 0}-{result.interaction_id}"


@dataclass(frozen=True, slots=True)
class Confirmation:
    """The confirmation e-mail of a stored submission, queued in the unit of work that
    stores it (`accept_inbound_then`), so the two commit together: a crash leaves
    neither. Called, it answers whether one may go out.

    A repeat of the submission (the same form token or `submission_id`) stores
    nothing new and comes here again, where the idempotency key
    `webform-confirmation:<external id>` is taken and nothing more is queued.
    The address and texts are those of the stored submission (for a new one,
    what was just stored from `inbound`; for a repeat, read back), never a
    repeat's own fields, so a repeat cannot send the confirmation elsewhere.
    Without an e-mail address there is none.
    """

    policy: Policy
    inbound: Inbound

    async def __call__(self, work: Work, result: IngestResult) -> bool:
        return (await self.together(work, [(self, result)]))[0]

    @staticmethod
    async def together(
        work: Work, confirmations: list[tuple[Confirmation, IngestResult]]
    ) -> list[bool]:
        """Those of submissions stored together, queued together (`outbox.enqueue_many`);
        they are one hub's, so the first one's policy is theirs."""
        wanted: list[tuple[int, Message]] = []
        for index, (confirmation, result) in enumerate(confirmations):
            inbound = confirmation.inbound
            meta = inbound.metadata if not result.duplicate else await _stored_meta(work, result)
            if meta.get("email"):
                wanted.append((index, _message(meta, inbound.external_id, result)))
        mailed = [False] * len(confirmations)
        if wanted:
            policy = confirmations[0][0].policy
            rows = await enqueue_many(work, [message for _, message in wanted], policy)
            for (index, _), row in zip(wanted, rows, strict=True):
                mailed[index] = row.status != "blocked"
        return mailed


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
