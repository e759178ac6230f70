"""The pre-chat form: link a new session's chat id to the customer the visitor names.

The chat id identity is otherwise created by ingest, on a new prospect, with
the session's first message. When the visitor gave an e-mail address (else a
phone number), the chat id is first attached to the customer owning that
address, or to a new prospect holding it, so every message of the session
joins that customer's history and an agent's reply still finds its way back
(a chat reply goes to a chat identity, `hub.replies`).

Why not simply ingest the first message with sender_kind email: the chat id
would then never belong to that customer; the session's later messages (sent
as the chat id) would land on a second customer, and a reply on the chat would
find no chat identity to go to.

The claim is not verified. That is the web form's trust level too; each stored
message carries `contact_verified: false`, and the link is made only once the
visitor sends a message, so hellos alone create no customers.
"""

from __future__ import annotations

from channels.chat.sessions import SessionClaim
from hub.context import Hub
from hub.identity import do_attach_identity, normalise_identity


def check_contact(claim: SessionClaim, region: str) -> SessionClaim:
    """The claim with its e-mail and phone normalised; raises `InvalidInputError`."""
    email = normalise_identity("email", claim.email, region) if claim.email else None
    phone = normalise_identity("phone", claim.phone, region) if claim.phone else None
    return SessionClaim(claim.session, claim.name, email, phone)


def contact_metadata(claim: SessionClaim) -> dict[str, object]:
    """What the pre-chat form said, for each stored message's metadata."""
    meta: dict[str, object] = {"chat_session": claim.session}
    if claim.has_contact or claim.name:
        meta["contact"] = {"name": claim.name, "email": claim.email, "phone": claim.phone}
        meta["contact_verified"] = False
    return meta


async def do_link_contact(hub: Hub, claim: SessionClaim) -> int | None:
    """Attach the chat id to the claimed contact's customer; the customer id, or None."""
    if not claim.has_contact:
        return None
    kind, value = ("email", claim.email) if claim.email else ("phone", claim.phone)
    return await do_attach_identity(hub, kind, str(value), claim.name, "chat", claim.chat_id)
