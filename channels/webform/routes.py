"""The web form's routes: `GET /channels/webform` (the form) and `POST /channels/webform`.

A post goes: read (bounded) → check the fields → the spam rules → the hub's
intake with the confirmation e-mail queued, in one transaction → the answer. A form post
is answered 303 to the thank-you page, or with the form again (values kept,
errors beside their fields, or the reason it was refused); a JSON post with
201 `{"reference": ...}` (200 and the same reference for a repeat), 422
`{"errors": {field: message}}`, or the refusal's status with
`{"reason": ..., "detail": ...}`. Texts follow `?lang=` or Accept-Language.

The form page is never cached: each view carries a form token of its own,
and a shared cached token would make two visitors' posts one submission.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import State

from channels.webform.confirmation import Confirmation, reference_of
from channels.webform.rejections import STATUS, RejectedError, rejected_counter
from channels.webform.spam import Attempt, SlidingWindow, check_spam
from channels.webform.submission import (
    FIELDS,
    MAX_ATTACHMENTS,
    MAX_CHARS,
    Client,
    InvalidSubmissionError,
    Submission,
    check_submission,
    content_kind,
    external_id_of,
    max_request_bytes,
    read_submission,
    to_inbound,
)
from channels.webform.texts import TEXTS, TOPICS, choose_language, text
from channels.webform.tokens import (
    Thanks,
    parse_form_token,
    parse_thanks,
    sign_form_token,
    sign_thanks,
)
from hub.api.deps import get_hub
from hub.context import Hub
from hub.intake import accept_inbound_then
from templates import TEMPLATE_DIR

router = APIRouter(prefix="/channels/webform", tags=["channels"])
pages = Jinja2Templates(directory=str(TEMPLATE_DIR))
WINDOW_STATE = "webform_rate_window"
MEGABYTE = 1024 * 1024
NO_STORE = {"Cache-Control": "no-store"}
# A form shown again keeps its token (the fill time runs on) unless the token is older than this.
TOKEN_REUSE_SECONDS = 3600.0

_TEXT_FIELDS = {
    **{name: {"type": "string", "maxLength": MAX_CHARS.get(name, 20)} for name in FIELDS},
    "website": {"type": "string", "description": "leave empty: a trap for bots"},
}
_FORM_SCHEMA = {
    "type": "object",
    "required": ["name", "message", "form_token"],
    "properties": {
        **_TEXT_FIELDS,
        "topic": {"type": "string", "enum": list(TOPICS), "default": "inquiry"},
        "form_token": {"type": "string", "description": "from the served form"},
        "attachments": {"type": "array", "items": {"type": "string", "format": "binary"}},
    },
}
_JSON_SCHEMA = {
    "type": "object",
    "required": ["name", "message"],
    "properties": {
        **_TEXT_FIELDS,
        "topic": {"type": "string", "enum": list(TOPICS), "default": "inquiry"},
        "submission_id": {"type": "string", "description": "repeat it to retry safely"},
    },
}
_HTML_AGAIN = {"text/html": {"schema": {"type": "string"}}}  # a form post: the form again
_REFUSED = {
    "type": "object",
    "required": ["reason", "detail"],
    "properties": {
        "reason": {"type": "string", "enum": list(STATUS)},
        "detail": {"type": "string"},
    },
}
_REFERENCE = {
    "type": "object",
    "required": ["reference"],
    "properties": {"reference": {"type": "string"}},
}
_FIELD_ERRORS = {
    "type": "object",
    "required": ["errors"],
    "properties": {"errors": {"type": "object", "additionalProperties": {"type": "string"}}},
}


def _refusal(status: int) -> dict[str, Any]:
    """The answer of every refusal with this status (`rejections.STATUS`); a 422 may also
    be a field that is wrong, its message by field."""
    reasons = [reason for reason, code in STATUS.items() if code == status]
    description = "refused (" + ", ".join(reasons) + "): why, in the form's language"
    schema: dict[str, Any] = _REFUSED
    if status == 422:
        description = "a field is wrong (its message by field), or " + description
        schema = {"anyOf": [_FIELD_ERRORS, _REFUSED]}
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}, **_HTML_AGAIN},
    }


# JSON for a JSON post; a form post (form-encoded or multipart) gets HTML pages.
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a repeat of an accepted submission (JSON): the same reference",
        "content": {"application/json": {"schema": _REFERENCE}},
    },
    201: {
        "description": "accepted (JSON): the reference the customer is given",
        "content": {"application/json": {"schema": _REFERENCE}},
    },
    303: {"description": "accepted (a form post): on to the thank-you page"},
    **{status: _refusal(status) for status in sorted(set(STATUS.values()))},
}
OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _JSON_SCHEMA},
            "application/x-www-form-urlencoded": {"schema": _FORM_SCHEMA},
            "multipart/form-data": {"schema": _FORM_SCHEMA},
        },
    }
}


def _secret(hub: Hub) -> str:
    return hub.settings.secret_key or ""


def _language(request: Request, lang: str | None) -> str:
    return choose_language(lang, request.headers.get("accept-language"))


@router.get("", response_class=HTMLResponse)
async def form_page(request: Request, lang: str | None = None, hub: Hub = Depends(get_hub)) -> Any:
    """The contact form, in German or English; embeddable in an iframe, no JavaScript needed."""
    rejected_counter(hub.metrics)  # the refusals' counter shows in /metrics from the first view
    language = _language(request, lang)
    return render_form(request, hub, language, sign_form_token(_secret(hub)))


@router.post("", status_code=201, responses=RESPONSES, openapi_extra=OPENAPI_BODY)
async def submit(request: Request, lang: str | None = None, hub: Hub = Depends(get_hub)) -> Any:
    """Take one submission: form-encoded, multipart (with attachments) or JSON."""
    language = _language(request, lang)
    wants_html = content_kind(request.headers.get("content-type", "")) == "form"
    submission: Submission | None = None
    try:
        submission = await read_submission(request, hub.settings.mail_max_attachment_bytes)
        return await _accept(request, hub, submission, language, wants_html)
    except InvalidSubmissionError as invalid:
        assert submission is not None  # only the field checks raise it
        return _invalid(request, hub, submission, invalid, language, wants_html)
    except RejectedError as rejected:
        rejected_counter(hub.metrics).labels(rejected.reason).inc()
        return _rejected(request, hub, submission, rejected, language, wants_html)


@router.get("/thanks", response_class=HTMLResponse)
async def thanks_page(request: Request, t: str | None = None, hub: Hub = Depends(get_hub)) -> Any:
    """The thank-you page with the submission's reference (only one the hub handed out)."""
    thanks = parse_thanks(_secret(hub), t)
    language = thanks.language if thanks and thanks.language in TEXTS else _language(request, None)
    context = {
        "lang": language,
        "t": TEXTS[language],
        "thanks": thanks,
        "form_url": f"{router.prefix}?lang={language}",
    }
    status = 200 if thanks is not None else 404
    return pages.TemplateResponse(
        request, "webform_thanks.html", context, status_code=status, headers=NO_STORE
    )


async def _accept(
    request: Request, hub: Hub, submission: Submission, language: str, wants_html: bool
) -> Response:
    contact = check_submission(submission, hub.settings.default_region)
    claim = parse_form_token(_secret(hub), submission.form_token)
    external_id = external_id_of(submission, claim)
    client = Client(
        request.client.host if request.client else "unknown", request.headers.get("user-agent")
    )
    check_spam(Attempt(submission, claim, external_id, client.ip, time.time(), _window(request)))
    inbound = to_inbound(submission, contact, external_id, client, language)
    result, mailed = await accept_inbound_then(hub, inbound, Confirmation(hub.policy, inbound))
    reference = reference_of(result)
    if not wants_html:
        return JSONResponse({"reference": reference}, status_code=200 if result.duplicate else 201)
    token = sign_thanks(_secret(hub), Thanks(reference, language, mailed))
    return RedirectResponse(f"{router.prefix}/thanks?t={token}", status_code=303)


def _window(request: Request) -> SlidingWindow:
    """This app's rate-limit window (one per app, so that tests and apps do not share one)."""
    state: State = request.app.state
    window = getattr(state, WINDOW_STATE, None)
    if window is None:
        window = SlidingWindow()
        setattr(state, WINDOW_STATE, window)
    return window


def _invalid(
    request: Request,
    hub: Hub,
    submission: Submission,
    invalid: InvalidSubmissionError,
    language: str,
    wants_html: bool,
) -> Response:
    errors = {name: error_message(language, name, code) for name, code in invalid.errors.items()}
    if not wants_html:
        return JSONResponse({"errors": errors}, status_code=422)
    token = _reusable_token(hub, submission)
    return render_form(request, hub, language, token, submission, errors=errors, status=422)


def _rejected(
    request: Request,
    hub: Hub,
    submission: Submission | None,
    rejected: RejectedError,
    language: str,
    wants_html: bool,
) -> Response:
    detail = rejection_message(hub, language, rejected)
    headers = {}
    if rejected.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(rejected.retry_after)))
    if not wants_html:
        body = {"reason": rejected.reason, "detail": detail}
        return JSONResponse(body, status_code=rejected.status_code, headers=headers)
    token = _reusable_token(hub, submission)
    return render_form(
        request,
        hub,
        language,
        token,
        submission,
        rejection=detail,
        status=rejected.status_code,
        headers=headers,
    )


def _reusable_token(hub: Hub, submission: Submission | None) -> str:
    """The submission's own form token while it is genuine (the fill time runs on), else anew."""
    token = submission.form_token if submission is not None else None
    claim = parse_form_token(_secret(hub), token)
    if token is None or claim is None or time.time() - claim.issued_at > TOKEN_REUSE_SECONDS:
        return sign_form_token(_secret(hub))
    return token


def error_message(language: str, name: str, code: str) -> str:
    limit = MAX_CHARS.get(name, MAX_ATTACHMENTS)
    return text(language, f"error_{code}", limit=limit)


def rejection_message(hub: Hub, language: str, rejected: RejectedError) -> str:
    limit = max_request_bytes(hub.settings.mail_max_attachment_bytes)
    return text(
        language,
        f"reject_{rejected.reason}",
        minutes=max(1, math.ceil((rejected.retry_after or 0) / 60)),
        megabytes=max(1, limit // MEGABYTE),
    )


def render_form(
    request: Request,
    hub: Hub,
    language: str,
    form_token: str,
    submission: Submission | None = None,
    *,
    errors: dict[str, str] | None = None,
    rejection: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The form page, with what was sent, errors by field, or why it was refused."""
    t = TEXTS[language]
    megabytes = max(1, hub.settings.mail_max_attachment_bytes // MEGABYTE)
    context = {
        "lang": language,
        "t": t,
        "topics": [(topic, t[f"topic_{topic}"]) for topic in TOPICS],
        "values": submission.values if submission else {"topic": "inquiry"},
        "errors": errors or {},
        "rejection": rejection,
        "form_token": form_token,
        "attachments_hint": text(
            language, "attachments_hint", count=MAX_ATTACHMENTS, megabytes=megabytes
        ),
        "attachments_again": bool(submission and submission.attachments),
        "max_chars": MAX_CHARS,
    }
    all_headers = {
        **NO_STORE,
        "Content-Language": language,
        "Vary": "Accept-Language",
        **(headers or {}),
    }
    return pages.TemplateResponse(
        request, "webform.html", context, status_code=status, headers=all_headers
    )
