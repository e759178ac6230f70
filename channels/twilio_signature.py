"""Twilio webhook signatures: a request counts only if Twilio really signed it.

The URL checked is `OMNIHUB_PUBLIC_URL` plus the path and query the process
received: behind a proxy, the public URL is what Twilio signed, not the URL
the process sees. twilio's own `RequestValidator` does the rest: the URL with
and without the port, repeated form parameters, and JSON bodies through the
`bodySHA256` query parameter. A request that fails is answered 403, stores
nothing, is counted in `/metrics` and logged with the URL tried, so a wrong
`PUBLIC_URL` (which would drop all real traffic) is noticed at once.

A signed form is handed on with NUL in any value replaced by U+FFFD: the
database refuses NUL, and a webhook that fails there is retried by Twilio
until it gives up, so the contact would be lost.
"""

from __future__ import annotations

import logging

from fastapi import HTTPException, Request
from starlette.datastructures import FormData
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from hub.context import Hub

log = logging.getLogger(__name__)


def signed_url(hub: Hub, request: Request) -> str:
    query = request.url.query
    return f"{hub.settings.public_url}{request.url.path}" + (f"?{query}" if query else "")


async def check_twilio_signature(hub: Hub, request: Request) -> FormData | None:
    """The verified form (None for a JSON body); raises 403 when the signature is wrong."""
    token = hub.settings.twilio_auth_token
    url = signed_url(hub, request)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    is_json = request.headers.get("content-type", "").startswith("application/json")
    form = None if is_json else await request.form()
    params: object = (await request.body()).decode("utf-8", "replace") if is_json else form
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    valid = bool(token and signature) and RequestValidator(token or "").validate(
        url, params, signature, algorithm
    )
    if not valid:
        hub.metrics.webhook_rejected.labels(request.url.path).inc()
        log.warning(
            "Twilio webhook refused: bad or missing signature for %s "
            "(is OMNIHUB_PUBLIC_URL what Twilio calls?)",
            url,
        )
        raise HTTPException(403, "invalid Twilio signature")
    return None if form is None else storable(form)


def storable(form: FormData) -> FormData:
    """The form with NUL replaced in every text value (files pass as they are)."""
    return FormData(
        [
            (name, storable_text(value) if isinstance(value, str) else value)
            for name, value in form.multi_items()
        ]
    )


def storable_text(value: str) -> str:
    """`value` with NUL, which the database refuses, replaced by U+FFFD."""
    return value.replace("\x00", "\ufffd")
