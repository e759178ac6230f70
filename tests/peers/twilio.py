"""A loopback stand-in for Twilio's REST API (Messages), and Twilio's side of the webhooks.

The one peer that cannot be real (DESIGN.md, principle 5). It speaks Twilio's
wire format, so the hub's sender runs twilio-python's own `Client` against it:

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json
        basic auth (AccountSid, auth token), form-encoded To, From, Body,
        StatusCallback, ...; 201 with the message resource as JSON (sid
        "SM" + 32 hex digits, status "queued", ...). Refusals are Twilio's
        JSON errors: {"code": 21610, "message": ..., "more_info": ..., "status": 400}.

    twilio_api.url                          the base URL (OMNIHUB_TWILIO_API_BASE_URL)
    twilio_api.messages                     every message it accepted, in order
    twilio_api.requests                     how many requests reached it
    twilio_api.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
    twilio_api.drop_next()                  read the request, close without an answer
    twilio_api.stall_next()                 read the request, answer nothing until
                                            the client gives up (or the peer stops)

Queued faults are used in order, one per request. It runs in threads of its own
on 127.0.0.1 and a free port (HTTP/1.0, one request a connection), and the
fixture joins every thread before the test ends.

Twilio's side of the webhooks: `sign(url, params, token)` is what Twilio puts in
X-Twilio-Signature, computed with twilio's own `RequestValidator`;
`post_signed(client, path, params, ...)` posts a signed form (or, with
`json_body`, a JSON body signed through `bodySHA256`) to the app as Twilio
would; `incoming_sms(...)` and `status_callback(...)` build the fields Twilio
sends to the incoming-message webhook and to a message's status callback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from twilio.request_validator import SIGNATURE_HEADER, RequestValidator

from hub.models import utcnow

HOST = "127.0.0.1"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "twilio-test-auth-token"
OUR_NUMBER = "+4930123456"
STALL_SECONDS = 10.0  # bounded: a stalled request is closed after this, if still open
JOIN_SECONDS = 5.0
MESSAGES_PATH = re.compile(r"/2010-04-01/Accounts/(?P<account>AC[0-9a-f]{32})/Messages\.json")
MAX_BODY = 1600

Params = Sequence[tuple[str, str]] | Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Fault:
    action: Literal["answer", "drop", "stall"]
    status: int = 0
    code: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message the stand-in accepted: its SID and the form as it came."""

    sid: str
    account_sid: str
    form: dict[str, list[str]]

    def get(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None

    @property
    def to(self) -> str | None:
        return self.get("To")

    @property
    def body(self) -> str | None:
        return self.get("Body")


class TwilioApi:
    """The stand-in a test talks to, what reached it, and the faults it has queued."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[SentMessage] = []
        self.requests = 0
        self.stopping = threading.Event()
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="twilio-api"
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def fail_next(self, status: int, code: int, message: str) -> None:
        self._queue(Fault("answer", status, code, message))

    def drop_next(self) -> None:
        self._queue(Fault("drop"))

    def stall_next(self) -> None:
        self._queue(Fault("stall"))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()  # joins the request threads (daemon_threads is off)
        self._thread.join(JOIN_SECONDS)

    # Called on the server's threads.

    def is_authorised(self, header: str | None, account: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return account == self.account_sid and header == f"Basic {expected}"

    def take_fault(self) -> Fault | None:
        with self._lock:
            self.requests += 1
            return self._faults.popleft() if self._faults else None

    def record(self, form: dict[str, list[str]]) -> SentMessage:
        message = SentMessage(f"SM{uuid.uuid4().hex}", self.account_sid, form)
        with self._lock:
            self.messages.append(message)
        return message

    def _queue(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every request thread

    def __init__(self, api: TwilioApi) -> None:
        super().__init__((HOST, 0), _Handler)
        self.api = api


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request a connection: nothing idles at the end
    server: _Server

    def do_POST(self) -> None:
        api = self.server.api
        found = MESSAGES_PATH.fullmatch(urlsplit(self.path).path)
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
        if found is None:
            self._error(404, 20404, "The requested resource was not found")
        elif not api.is_authorised(self.headers.get("Authorization"), found["account"]):
            self._error(401, 20003, "Authenticate")
        else:
            self._messages(api, form)

    def _messages(self, api: TwilioApi, form: dict[str, list[str]]) -> None:
        fault = api.take_fault()
        if fault is not None and fault.action == "answer":
            self._error(fault.status, fault.code, fault.message)
        elif fault is not None:
            if fault.action == "stall":
                api.stopping.wait(STALL_SECONDS)
            self.close_connection = True  # and say nothing: the client cannot know
        elif refusal := _refusal(form):
            self._error(400, *refusal)
        else:
            self._json(201, _resource(api.record(form)))

    def _error(self, status: int, code: int, message: str) -> None:
        more_info = f"https://www.twilio.com/docs/errors/{code}"
        self._json(
            status, {"code": code, "message": message, "more_info": more_info, "status": status}
        )

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's own output says what matters."""


def _refusal(form: dict[str, list[str]]) -> tuple[int, str] | None:
    """Twilio's own checks of a new message, the few the hub could trip."""
    if not form.get("To"):
        return 21604, "A 'To' phone number is required."
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return 21603, "A 'From' phone number is required."
    body = (form.get("Body") or [""])[0]
    if not body and not form.get("MediaUrl"):
        return 21602, "Message body is required."
    if len(body) > MAX_BODY:
        return 21617, "The concatenated message body exceeds the 1600 character limit."
    return None


def _resource(message: SentMessage) -> dict[str, Any]:
    """The message resource as Twilio answers a create (API version 2010-04-01)."""
    now = format_datetime(utcnow())
    uri = f"/2010-04-01/Accounts/{message.account_sid}/Messages/{message.sid}"
    return {
        "account_sid": message.account_sid,
        "api_version": "2010-04-01",
        "body": message.body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": message.get("From"),
        "messaging_service_sid": message.get("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": message.sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": message.to,
        "uri": f"{uri}.json",
    }


@contextmanager
def serving(account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> Iterator[TwilioApi]:
    api = TwilioApi(account_sid, auth_token)
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def twilio_api() -> Iterator[TwilioApi]:
    """Twilio's Messages API on 127.0.0.1, accepting every message unless told otherwise."""
    with serving() as api:
        yield api


# Twilio's side of the webhooks.


class _MultiDict(dict[str, list[str]]):
    """Form fields with repeats, in the shape RequestValidator reads (`getlist`)."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


def pairs(params: Params) -> list[tuple[str, str]]:
    return list(params.items()) if isinstance(params, Mapping) else list(params)


def sign(url: str, params: Params, token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature for a form posted to `url`, as Twilio computes it."""
    fields = _MultiDict()
    for name, value in pairs(params):
        fields.setdefault(name, []).append(value)
    return RequestValidator(token).compute_signature(url, fields)


async def post_signed(
    client: httpx.AsyncClient,
    path: str,
    params: Params = (),
    *,
    public_url: str,
    token: str = AUTH_TOKEN,
    signature: str | None = None,
    headers: Mapping[str, str] | None = None,
    json_body: Mapping[str, Any] | None = None,
) -> httpx.Response:
    """Post to the app as Twilio does, signed over `public_url + path` (or `signature`)."""
    if json_body is not None:
        content = json.dumps(json_body).encode()
        path += f"?bodySHA256={hashlib.sha256(content).hexdigest()}"
        kind, signed = "application/json", sign(public_url + path, (), token)
    else:
        content = urlencode(pairs(params)).encode()
        kind, signed = "application/x-www-form-urlencoded", sign(public_url + path, params, token)
    sent = {"Content-Type": kind, SIGNATURE_HEADER: signature or signed, **(headers or {})}
    return await client.post(path, content=content, headers=sent)


def incoming_sms(
    from_: str,
    body: str,
    *,
    sid: str | None = None,
    to: str = OUR_NUMBER,
    media: Sequence[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The fields of Twilio's incoming-message webhook; media as (url, content type)."""
    sid = sid or f"SM{uuid.uuid4().hex}"
    fields = [
        ("ToCountry", "DE"),
        ("SmsMessageSid", sid),
        ("NumMedia", str(len(media))),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("FromCountry", "DE"),
        ("To", to),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", from_),
        ("ApiVersion", "2010-04-01"),
    ]
    for index, (url, content_type) in enumerate(media):
        fields += [(f"MediaUrl{index}", url), (f"MediaContentType{index}", content_type)]
    return fields


def status_callback(
    message_sid: str,
    status: str,
    *,
    to: str,
    from_: str = OUR_NUMBER,
    error_code: int | None = None,
    error_message: str | None = None,
) -> list[tuple[str, str]]:
    """The fields of a message status callback."""
    fields = [
        ("SmsSid", message_sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", to),
        ("MessageSid", message_sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", from_),
        ("ApiVersion", "2010-04-01"),
    ]
    if error_code is not None:
        fields.append(("ErrorCode", str(error_code)))
    if error_message is not None:
        fields.append(("ErrorMessage", error_message))
    return fields
