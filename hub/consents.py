"""Consents: may we contact this customer on this channel, for service or marketing?

One row per customer, channel (`email`, `sms`, `phone`) and purpose
(`service`, `marketing`), in a state `granted`, `pending_confirmation` or
`revoked`, with its source and evidence (time, IP, the text shown).

Marketing e-mail needs a confirmed double opt-in (GDPR practice in Germany):

    granted asked ──> pending_confirmation ──link clicked──> granted (confirmed_at, IP)
                        │ confirmation e-mail queued in the outbox (service purpose)

The link carries a signed, expiring token naming the consent and the request
it answers; the confirmation page asks for a click (POST) so that a mail
scanner following links confirms nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import record
from hub.context import Hub, Work
from hub.errors import ConflictError, InvalidInputError, NotFoundError
from hub.models import Consent, Customer, Identity, utcnow
from hub.outbox import Message, enqueue
from templates import render_message

CHANNELS = ("email", "sms", "phone")
PURPOSES = ("service", "marketing")
STATES = ("granted", "pending_confirmation", "revoked")
CONFIRM_SALT = "omnihub.consent.confirm"
CONFIRM_DAYS = 14


def consent_view(consent: Consent) -> dict[str, Any]:
    return {
        "channel": consent.channel,
        "purpose": consent.purpose,
        "state": consent.state,
        "source": consent.source,
        "evidence": consent.evidence,
        "updated_at": consent.updated_at,
    }


async def list_consents(session: AsyncSession, customer_id: int) -> list[Consent]:
    statement = select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.id)
    return list(await session.scalars(statement))


def needs_double_opt_in(channel: str, purpose: str) -> bool:
    return channel == "email" and purpose == "marketing"


async def do_set_consent(
    hub: Hub,
    work: Work,
    actor_id: int | None,
    customer: Customer,
    channel: str,
    purpose: str,
    state: str,
    source: str,
    text_shown: str | None = None,
    ip: str | None = None,
) -> Consent:
    """Record a consent; a marketing e-mail grant becomes a double opt-in request."""
    _check(channel, purpose, state)
    consent = await _find_or_new(work, customer.id, channel, purpose)
    evidence = {
        "at": utcnow().isoformat(),
        "source": source,
        "ip": ip,
        "text_shown": text_shown,
        "recorded_by_agent_id": actor_id,
    }
    if state == "granted" and needs_double_opt_in(channel, purpose):
        if consent.state == "granted" and consent.evidence.get("confirmed_at"):
            return consent
        await _request_confirmation(hub, work, customer, consent, evidence)
    else:
        consent.state, consent.source, consent.evidence = state, source, evidence
    await work.session.flush()
    record(
        work.session,
        actor_id,
        "consent.set",
        "customer",
        customer.id,
        channel=channel,
        purpose=purpose,
        state=consent.state,
        source=source,
    )
    work.emit(
        "consent.changed",
        customer_id=customer.id,
        channel=channel,
        purpose=purpose,
        state=consent.state,
    )
    return consent


def _check(channel: str, purpose: str, state: str) -> None:
    if channel not in CHANNELS:
        raise InvalidInputError(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    if purpose not in PURPOSES:
        raise InvalidInputError(f"purpose must be one of {', '.join(PURPOSES)}", field="purpose")
    if state not in ("granted", "revoked"):
        raise InvalidInputError(
            "state must be granted or revoked (confirmation is the customer's own click)",
            field="state",
        )


async def _find_or_new(work: Work, customer_id: int, channel: str, purpose: str) -> Consent:
    statement = select(Consent).where(
        Consent.customer_id == customer_id, Consent.channel == channel, Consent.purpose == purpose
    )
    consent = (await work.session.scalars(statement)).first()
    if consent is None:
        consent = Consent(
            customer_id=customer_id, channel=channel, purpose=purpose, state="revoked", evidence={}
        )
        work.session.add(consent)
        await work.session.flush()
    return consent


async def _request_confirmation(
    hub: Hub, work: Work, customer: Customer, consent: Consent, evidence: dict[str, Any]
) -> None:
    address = await _email_of(work.session, customer.id)
    consent.state, consent.source = "pending_confirmation", evidence["source"]
    consent.evidence = {**evidence, "requested_at": evidence["at"], "address": address}
    await work.session.flush()
    token = confirmation_signer(hub).dumps({"consent": consent.id, "at": evidence["at"]})
    link = f"{hub.settings.public_url}/consents/confirm/{token}"
    subject, text = render_message(
        "consent_confirmation", customer.language, {"name": customer.name, "link": link}
    )
    await enqueue(
        work,
        Message(
            idempotency_key=f"consent-confirmation:{consent.id}:{evidence['at']}",
            channel="email",
            recipient=address,
            purpose="service",
            subject=subject,
            text=text,
            customer_id=customer.id,
        ),
        hub.policy,
    )


async def _email_of(session: AsyncSession, customer_id: int) -> str:
    statement = (
        select(Identity.value)
        .where(Identity.customer_id == customer_id, Identity.kind == "email")
        .order_by(Identity.id)
    )
    address = (await session.scalars(statement)).first()
    if address is None:
        raise InvalidInputError("the customer has no e-mail address to confirm", field="channel")
    return address


def confirmation_signer(hub: Hub) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(hub.settings.secret_key or "", salt=CONFIRM_SALT)


async def find_pending_consent(hub: Hub, session: AsyncSession, token: str) -> Consent:
    """The consent a confirmation link is for; raises when the link is bad or stale."""
    try:
        claim = confirmation_signer(hub).loads(token, max_age=CONFIRM_DAYS * 86400)
    except SignatureExpired:
        raise ConflictError("this confirmation link has expired; please ask again") from None
    except BadSignature:
        raise NotFoundError("this confirmation link is not valid") from None
    consent = await session.get(Consent, claim["consent"])
    if consent is None or consent.evidence.get("requested_at") != claim["at"]:
        raise ConflictError("this confirmation link was replaced by a newer one")
    return consent


async def do_confirm(
    hub: Hub, work: Work, token: str, ip: str | None, user_agent: str | None
) -> Consent:
    consent = await find_pending_consent(hub, work.session, token)
    if consent.state == "granted":
        return consent
    if consent.state != "pending_confirmation":
        raise ConflictError("this consent was revoked since the link was sent")
    confirmed_at: datetime = utcnow()
    consent.state = "granted"
    consent.evidence = {
        **consent.evidence,
        "confirmed_at": confirmed_at.isoformat(),
        "confirmed_ip": ip,
        "confirmed_user_agent": user_agent,
    }
    record(
        work.session,
        None,
        "consent.confirmed",
        "customer",
        consent.customer_id,
        channel=consent.channel,
        purpose=consent.purpose,
        ip=ip,
    )
    work.emit(
        "consent.changed",
        customer_id=consent.customer_id,
        channel=consent.channel,
        purpose=consent.purpose,
        state="granted",
    )
    return consent
