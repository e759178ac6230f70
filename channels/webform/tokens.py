"""The web form's signed tokens: the one the form carries, and the one the thank-you page reads.

The form token names the submission (a random id) and when the form was
served, signed with the hub's secret key (itsdangerous, a salt of its own), so
that a client can neither pick the time nor reuse another visitor's id
without the server noticing. The time is our own float, not itsdangerous's
whole seconds, because the minimum fill time is measured in fractions.

The thank-you token carries the reference to show, so that the thank-you
page shows only references the hub itself handed out.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

FORM_SALT = "omnihub.webform.form"
THANKS_SALT = "omnihub.webform.thanks"


@dataclass(frozen=True, slots=True)
class FormClaim:
    """What a valid form token says: the submission's id and when the form was served."""

    submission_id: str
    issued_at: float


@dataclass(frozen=True, slots=True)
class Thanks:
    reference: str
    language: str
    mailed: bool


def sign_form_token(secret: str, issued_at: float | None = None) -> str:
    """A new form token: a fresh submission id, served now (or at `issued_at`)."""
    claim = {"id": secrets.token_urlsafe(16), "at": time.time() if issued_at is None else issued_at}
    return URLSafeSerializer(secret, salt=FORM_SALT).dumps(claim)


def parse_form_token(secret: str, token: str | None) -> FormClaim | None:
    """The claim of a genuine form token; None for a missing, forged or garbled one."""
    if not token or len(token) > 500:
        return None
    try:
        claim = URLSafeSerializer(secret, salt=FORM_SALT).loads(token)
    except BadSignature:
        return None
    if not isinstance(claim, dict):
        return None
    submission_id, issued_at = claim.get("id"), claim.get("at")
    if not isinstance(submission_id, str) or not isinstance(issued_at, int | float):
        return None
    return FormClaim(submission_id, float(issued_at))


def sign_thanks(secret: str, thanks: Thanks) -> str:
    claim = {"ref": thanks.reference, "lang": thanks.language, "mailed": thanks.mailed}
    return URLSafeSerializer(secret, salt=THANKS_SALT).dumps(claim)


def parse_thanks(secret: str, token: str | None) -> Thanks | None:
    if not token or len(token) > 500:
        return None
    try:
        claim = URLSafeSerializer(secret, salt=THANKS_SALT).loads(token)
    except BadSignature:
        return None
    if not isinstance(claim, dict):
        return None
    return Thanks(str(claim.get("ref")), str(claim.get("lang")), bool(claim.get("mailed")))
