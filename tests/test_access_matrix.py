"""Every route of the running app, against every kind of missing, forged or ended credential.

The routes come from the app itself (`app.routes`), so a route added later is
checked without anyone listing it: every `/api/…` and console route must
refuse a request without a valid agent; a route anywhere else must be named
below as public, signed by Twilio, or a console page, or the first test
fails. Routes with a conversation, customer or complaint id must not give an
agent of another team that record.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from itsdangerous import TimestampSigner

from hub.agents import do_deactivate, end_sessions
from hub.app import SESSION_SECONDS, create_app
from hub.context import Hub
from hub.models import Agent, Conversation
from tests.conftest import SECRET, MakeAgent, SignedIn

# Routes that need no agent, and what stands in for one.
PUBLIC = {
    "/openapi.json": "the API's description",
    "/docs": "API documentation page",
    "/docs/oauth2-redirect": "API documentation page",
    "/redoc": "API documentation page",
    "/healthz": "liveness probe",
    "/readyz": "readiness probe",
    "/metrics": "Prometheus scrape (counts only, no customer data)",
    "/consents/confirm/{token}": "the double opt-in token is the credential",
    "/unsubscribe/{token}": "the signed unsubscribe token is the credential",
    "/unsubscribe/{token}/undo": "the signed unsubscribe token is the credential",
    "/channels/webform": "the public contact form",
    "/channels/webform/thanks": "the public contact form's thank-you page",
    "/channels/chat/ws": "the customer's chat socket",
    "/channels/chat/widget.js": "the embeddable chat widget",
    "/": "the sign-in page",
    "/login": "signing in",
    "/logout": "signing out ends only one's own session",
    "/console/static/{name}": "the console's scripts and styles",
}
# Routes a Twilio signature (X-Twilio-Signature) authenticates.
TWILIO_SIGNED = {
    "/channels/sms/twilio",
    "/channels/sms/twilio/status",
    "/channels/voice/twilio",
    "/channels/voice/twilio/status",
    "/channels/voice/twilio/dial-ended",
    "/channels/voice/twilio/queue-left",
    "/channels/voice/twilio/voicemail",
}
# Console pages answer a missing session by sending the browser to sign in.
REDIRECT_TO_SIGNIN = {
    "/console",
    "/console/language",
    "/console/campaigns",
    "/console/campaigns/{campaign_id}",
    "/console/kpis",
}
AGENT_ONLY_PREFIXES = ("/api/", "/console/")
AGENT_SOCKETS = {"/agent/ws"}
SCOPED = ("{conversation_id}", "{customer_id}", "{complaint_id}")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str

    def url(self, ids: dict[str, int] | None = None) -> str:
        given = ids or {}
        return re.sub(r"\{(\w+)\}", lambda m: str(given.get(m.group(1), 1)), self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(app: FastAPI) -> Iterator[Endpoint]:
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIWebSocketRoute):
            yield Endpoint("WS", context.path)
            continue
        for method in sorted(context.methods or ()):
            if method != "HEAD":
                yield Endpoint(method, context.path)


def needs_agent(endpoint: Endpoint) -> bool:
    if endpoint.path in PUBLIC or endpoint.path in TWILIO_SIGNED:
        return False
    return endpoint.path.startswith(AGENT_ONLY_PREFIXES) or endpoint.path in AGENT_SOCKETS


@pytest.fixture
def app(hub: Hub) -> FastAPI:
    return create_app(hub.settings, hub)


@pytest.fixture
async def http(app: FastAPI) -> Iterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client


def session_cookie(agent_id: int, key: str = SECRET, age: int = 0) -> str:
    """A session cookie as Starlette signs it, with a key and an age of our choosing."""

    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age

    payload = base64.b64encode(json.dumps({"agent_id": agent_id, "epoch": 0}).encode())
    return Signer(key).sign(payload).decode()


async def send(http: httpx.AsyncClient, endpoint: Endpoint, **kwargs) -> httpx.Response:
    body = {} if endpoint.method in ("POST", "PUT", "PATCH") else None
    return await http.request(endpoint.method, endpoint.url(), json=body, **kwargs)


def test_every_route_is_classified(app: FastAPI):
    unclassified = [
        str(e)
        for e in endpoints(app)
        if e.path not in PUBLIC
        and e.path not in TWILIO_SIGNED
        and e.path not in REDIRECT_TO_SIGNIN
        and not needs_agent(e)
    ]

    assert unclassified == [], "say whether these need an agent, a token or nothing"


def test_the_matrix_sees_the_whole_api(app: FastAPI):
    found = {str(e) for e in endpoints(app)}

    assert {"GET /api/conversations/{conversation_id}", "WS /agent/ws", "POST /login"} <= found
    assert sum(needs_agent(e) for e in endpoints(app)) >= 60


CREDENTIALS = ("none", "forged cookie", "expired cookie", "revoked token", "deactivated token")


@pytest.mark.parametrize("credential", CREDENTIALS)
async def test_every_agent_route_refuses_a_request_without_a_valid_agent(
    app: FastAPI, http: httpx.AsyncClient, hub: Hub, make_agent: MakeAgent, credential: str
):
    headers = await _credential(hub, http, make_agent, credential)
    wrong = []
    for endpoint in endpoints(app):
        if endpoint.method == "WS" or not (
            needs_agent(endpoint) or endpoint.path in REDIRECT_TO_SIGNIN
        ):
            continue
        response = await send(http, endpoint, headers=headers)
        refused = response.status_code == 401 or (
            endpoint.path in REDIRECT_TO_SIGNIN
            and response.status_code == 303
            and response.headers["location"] == "/"
        )
        if not refused:
            wrong.append(f"{endpoint}: {response.status_code}")

    assert wrong == []


async def _credential(
    hub: Hub, http: httpx.AsyncClient, make_agent: MakeAgent, credential: str
) -> dict[str, str]:
    """Headers for one kind of bad credential; the agent behind it is a real supervisor."""
    boss = await make_agent("supervisor")
    if credential == "forged cookie":
        http.cookies.set("omnihub_session", session_cookie(boss.id, key="guessed-" + SECRET))
    elif credential == "expired cookie":
        http.cookies.set("omnihub_session", session_cookie(boss.id, age=SESSION_SECONDS + 60))
    elif credential in ("revoked token", "deactivated token"):
        async with hub.work() as work:
            agent = await work.session.get(Agent, boss.id)
            assert agent is not None
            await (end_sessions if credential == "revoked token" else do_deactivate)(
                work.session, agent
            )
        return boss.headers
    return {}


async def test_a_fresh_cookie_of_the_same_shape_is_accepted(
    http: httpx.AsyncClient, supervisor: SignedIn
):
    """The control: the forged and expired cookies above fail for their key and age alone."""
    http.cookies.set("omnihub_session", session_cookie(supervisor.id))

    assert (await http.get("/api/agents/me")).status_code == 200


@pytest.mark.parametrize("endpoint", sorted(TWILIO_SIGNED))
async def test_twilio_webhooks_refuse_a_missing_or_forged_signature(
    http: httpx.AsyncClient, endpoint: str
):
    form = {"MessageSid": "SM1", "From": "+4915112345678", "Body": "hi", "CallSid": "CA1"}

    missing = await http.post(endpoint, data=form)
    forged = await http.post(endpoint, data=form, headers={"X-Twilio-Signature": "bm90IGl0"})

    assert (missing.status_code, forged.status_code) == (403, 403)


async def first_socket_answer(app: FastAPI, path: str, cookie: str | None) -> dict:
    """Open a websocket on the app in-process and return the app's first message."""
    headers = [(b"host", b"hub.test"), (b"origin", b"http://hub.test")]
    if cookie is not None:
        headers.append((b"cookie", f"omnihub_session={cookie}".encode()))
    scope = {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "ws",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("hub.test", 80),
        "subprotocols": [],
        "asgi": {"version": "3.0"},
    }
    incoming = [{"type": "websocket.connect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send_message(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send_message)
    return sent[0]


@pytest.mark.parametrize("cookie", ["none", "forged", "expired", "fresh"])
async def test_the_agent_socket_refuses_a_missing_forged_or_expired_session(
    app: FastAPI, supervisor: SignedIn, cookie: str
):
    value = {
        "none": None,
        "forged": session_cookie(supervisor.id, key="guessed-" + SECRET),
        "expired": session_cookie(supervisor.id, age=SESSION_SECONDS + 60),
        "fresh": session_cookie(supervisor.id),
    }[cookie]

    answer = await first_socket_answer(app, "/agent/ws", value)

    if cookie == "fresh":  # the control: the same cookie, rightly signed, is let in
        assert answer["type"] == "websocket.accept"
    else:
        assert answer == {"type": "websocket.close", "code": 1008, "reason": ""}


# Another team's records -------------------------------------------------------------------

SECRET_TEXT = "Kontonummer DE02 1203 0000 0000 2020 51"


@dataclass
class Scene:
    ids: dict[str, int]
    insider: SignedIn
    outsider: SignedIn


async def set_teams(hub: Hub, agent: SignedIn, teams: list[str]) -> None:
    async with hub.work() as work:
        row = await work.session.get(Agent, agent.id)
        assert row is not None
        row.teams = teams


@pytest.fixture
async def scene(hub: Hub, http: httpx.AsyncClient, make_agent: MakeAgent) -> Scene:
    """A complaint in the support team's queue; an agent of support and one of billing."""
    logger = await make_agent("supervisor")
    logged = await http.post(
        "/api/interactions",
        headers=logger.headers,
        json={
            "channel": "email",
            "email": "secret.customer@example.com",
            "name": "Secret Customer",
            "subject": "Secret subject",
            "text": SECRET_TEXT,
            "external_id": "scope-1",
            "complaint": True,
        },
    )
    assert logged.status_code == 201, logged.text
    ids = {key: logged.json()[key] for key in ("customer_id", "conversation_id", "complaint_id")}
    async with hub.work() as work:
        conversation = await work.session.get(Conversation, ids["conversation_id"])
        assert conversation is not None
        conversation.queue, conversation.assignee_id = "support", None
    insider, outsider = await make_agent("agent"), await make_agent("agent")
    await set_teams(hub, insider, ["support"])
    await set_teams(hub, outsider, ["billing"])
    return Scene(ids, insider, outsider)


def scoped_endpoints(app: FastAPI) -> list[Endpoint]:
    return [
        e
        for e in endpoints(app)
        if e.method != "WS" and any(name in e.path for name in SCOPED) and needs_agent(e)
    ]


async def test_an_agent_of_another_team_gets_404_for_every_route_with_its_ids(
    app: FastAPI, http: httpx.AsyncClient, scene: Scene
):
    leaked = []
    checked = scoped_endpoints(app)
    missing_ids = dict.fromkeys(scene.ids, 999999)
    for endpoint in checked:
        body = {} if endpoint.method in ("POST", "PUT", "PATCH") else None
        hidden, missing = [
            await http.request(
                endpoint.method, endpoint.url(ids), json=body, headers=scene.outsider.headers
            )
            for ids in (scene.ids, missing_ids)
        ]
        # Answered exactly as for ids that do not exist, so there is nothing to learn.
        refused = hidden.status_code == missing.status_code and not hidden.is_success
        if endpoint.path.startswith("/console/rows/"):
            refused = hidden.status_code == missing.status_code == 204  # "not in your lists"
        if not refused or SECRET_TEXT in hidden.text or "Secret" in hidden.text:
            leaked.append(f"{endpoint}: {hidden.status_code} (missing: {missing.status_code})")

    assert len(checked) >= 20
    assert leaked == []


async def test_the_same_routes_serve_an_agent_of_the_team(http: httpx.AsyncClient, scene: Scene):
    """The control for the test above: the records are there for those who may see them."""
    own = scene.insider.headers
    conversation = await http.get(f"/api/conversations/{scene.ids['conversation_id']}", headers=own)
    customer = await http.get(f"/api/customers/{scene.ids['customer_id']}", headers=own)
    complaint = await http.get(f"/api/complaints/{scene.ids['complaint_id']}", headers=own)

    assert conversation.status_code == 200 and SECRET_TEXT in conversation.text
    assert (customer.status_code, complaint.status_code) == (200, 200)


async def test_a_hidden_id_answers_like_a_missing_one(http: httpx.AsyncClient, scene: Scene):
    hidden = await http.get(
        f"/api/conversations/{scene.ids['conversation_id']}", headers=scene.outsider.headers
    )
    missing = await http.get("/api/conversations/999999", headers=scene.outsider.headers)

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == f"no conversation {scene.ids['conversation_id']}"


async def test_the_conversation_list_shows_no_other_teams_conversations(
    http: httpx.AsyncClient, scene: Scene
):
    listed = await http.get("/api/conversations", headers=scene.outsider.headers)

    ids = [c["id"] for c in listed.json()["conversations"]]
    assert scene.ids["conversation_id"] not in ids


async def test_the_complaint_list_shows_no_other_teams_complaints(
    http: httpx.AsyncClient, scene: Scene
):
    listed = await http.get("/api/complaints", headers=scene.outsider.headers)

    assert "Secret" not in listed.text


async def test_a_lookup_does_not_find_another_teams_customer(http: httpx.AsyncClient, scene: Scene):
    found = await http.get(
        "/api/customers/lookup",
        params={"email": "secret.customer@example.com"},
        headers=scene.outsider.headers,
    )

    assert found.status_code == 404


# Fields a request may not set ------------------------------------------------------------


async def test_role_and_teams_cannot_be_set_by_an_agent(
    http: httpx.AsyncClient, hub: Hub, agent: SignedIn
):
    sneaky_presence = await http.put(
        "/api/agents/me/presence",
        headers=agent.headers,
        json={"status": "online", "role": "admin", "teams": ["support"]},
    )
    own_routing = await http.put(
        f"/api/agents/{agent.id}/routing", headers=agent.headers, json={"teams": ["support"]}
    )

    assert sneaky_presence.status_code == 422
    assert own_routing.status_code == 403
    async with hub.sessions() as session:
        me = await session.get(Agent, agent.id)
        assert me is not None and (me.role, me.teams) == ("agent", [])


async def test_the_author_of_a_note_is_the_signed_in_agent_whatever_the_body_says(
    http: httpx.AsyncClient, scene: Scene, supervisor: SignedIn
):
    forged = await http.post(
        f"/api/conversations/{scene.ids['conversation_id']}/notes",
        headers=scene.insider.headers,
        json={"text": "mine", "author_agent_id": supervisor.id},
    )

    assert forged.status_code == 422


async def test_an_agent_cannot_make_themselves_the_key_account_of_a_customer(
    http: httpx.AsyncClient, agent: SignedIn
):
    created = await http.post("/api/customers", headers=agent.headers, json={"name": "Big"})

    taken = await http.patch(
        f"/api/customers/{created.json()['id']}",
        headers=agent.headers,
        json={"key_account_agent_id": agent.id},
    )

    assert taken.status_code == 403
