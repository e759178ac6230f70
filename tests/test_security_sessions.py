"""Sessions end from the server: a password change or deactivation ends every session and
token of that agent; sign-in is rate-limited per e-mail and per client address."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from itsdangerous import TimestampSigner

from hub.agents import create_agent, create_token, end_sessions
from hub.app import create_app
from hub.context import Hub
from hub.models import Agent
from hub.session_guard import SessionGuard
from hub.signin_limits import PER_ADDRESS, PER_EMAIL, WINDOW_SECONDS
from tests.conftest import MakeAgent, SignedIn

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a much better passphrase"


@pytest.fixture
def app(hub: Hub) -> FastAPI:
    return create_app(hub.settings, hub)


def browser(app: FastAPI) -> httpx.AsyncClient:
    """A client of its own cookie jar: one browser of the agent's."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test")


@pytest.fixture
async def two_browsers(app: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with browser(app) as one, browser(app) as two:
        yield one, two


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/login", json={"email": email, "password": password})


async def test_changing_the_password_ends_the_other_sessions_and_every_token(
    two_browsers, agent: SignedIn
):
    here, elsewhere = two_browsers
    assert (await sign_in(here, agent.email)).status_code == 200
    assert (await sign_in(elsewhere, agent.email)).status_code == 200

    changed = await here.put(
        "/api/agents/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert changed.status_code == 200, changed.text
    assert changed.json() == {"sessions_ended": True, "tokens_revoked": 1}
    assert (await here.get("/api/agents/me")).status_code == 200, "the changing session stays"
    assert (await elsewhere.get("/api/agents/me")).status_code == 401
    assert (await elsewhere.get("/console")).headers["location"] == "/"
    assert (await here.get("/api/agents/me", headers=agent.headers)).status_code == 401
    assert (await sign_in(elsewhere, agent.email)).status_code == 401
    assert (await sign_in(elsewhere, agent.email, NEW_PASSWORD)).status_code == 200


async def test_a_password_change_needs_the_current_password_and_changes_nothing_without_it(
    client: httpx.AsyncClient, agent: SignedIn
):
    refused = await client.put(
        "/api/agents/me/password",
        headers=agent.headers,
        json={"current_password": "not the password", "new_password": NEW_PASSWORD},
    )
    short = await client.put(
        "/api/agents/me/password",
        headers=agent.headers,
        json={"current_password": PASSWORD, "new_password": "short"},
    )

    assert refused.status_code == 403 and refused.json()["field"] == "current_password"
    assert short.status_code == 422 and short.json()["field"] == "password"
    assert (await client.get("/api/agents/me", headers=agent.headers)).status_code == 200
    assert (await sign_in(client, agent.email)).status_code == 200


async def test_a_password_changed_by_token_revokes_that_token_too(
    client: httpx.AsyncClient, agent: SignedIn
):
    changed = await client.put(
        "/api/agents/me/password",
        headers=agent.headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert changed.json()["tokens_revoked"] == 1
    assert (await client.get("/api/agents/me", headers=agent.headers)).status_code == 401


async def test_deactivating_an_agent_ends_their_sessions_tokens_and_sign_in(
    two_browsers, make_agent: MakeAgent, agent: SignedIn
):
    admin = await make_agent("admin")
    theirs, _ = two_browsers
    await sign_in(theirs, agent.email)

    done = await theirs.post(f"/api/agents/{agent.id}/deactivate", headers=admin.headers)

    assert done.status_code == 200 and done.json()["is_active"] is False
    assert (await theirs.get("/api/agents/me")).status_code == 401
    assert (await theirs.get("/api/agents/me", headers=agent.headers)).status_code == 401
    assert (await sign_in(theirs, agent.email)).status_code == 401


async def test_only_an_admin_deactivates_and_not_themselves(
    client: httpx.AsyncClient, make_agent: MakeAgent, agent: SignedIn, supervisor: SignedIn
):
    admin = await make_agent("admin")

    by_supervisor = await client.post(
        f"/api/agents/{agent.id}/deactivate", headers=supervisor.headers
    )
    by_agent = await client.post(f"/api/agents/{admin.id}/deactivate", headers=agent.headers)
    themselves = await client.post(f"/api/agents/{admin.id}/deactivate", headers=admin.headers)
    unknown = await client.post("/api/agents/999999/deactivate", headers=admin.headers)

    assert (by_supervisor.status_code, by_agent.status_code) == (403, 403)
    assert themselves.status_code == 422 and unknown.status_code == 404
    assert (await client.get("/api/agents/me", headers=agent.headers)).status_code == 200


@pytest.mark.parametrize("kind", ["websocket", "http"])
async def test_the_guard_empties_an_ended_session_before_any_route_or_socket_sees_it(
    hub: Hub, app: FastAPI, agent: SignedIn, kind: str
):
    seen: list[dict] = []

    async def route(scope, _receive, _send) -> None:
        seen.append(dict(scope["session"]))

    guard = SessionGuard(route)
    async with hub.work() as work:
        me = await work.session.get(Agent, agent.id)
        await end_sessions(work.session, me)
    for session in ({"agent_id": agent.id, "epoch": 0}, {"agent_id": agent.id, "epoch": 1}):
        await guard({"type": kind, "app": app, "session": dict(session)}, None, None)

    assert seen == [{}, {"agent_id": agent.id, "epoch": 1}]


async def test_a_cookie_from_before_epochs_counts_as_epoch_zero(hub: Hub, app: FastAPI):
    """Cookies signed before the epoch existed hold only the agent id; they still work once."""
    async with hub.work() as work:
        agent = await create_agent(work.session, "old@omnihub.test", "Old", "agent", PASSWORD)
        await create_token(work.session, agent)
    signer = TimestampSigner(hub.settings.secret_key)
    legacy = signer.sign(base64.b64encode(json.dumps({"agent_id": agent.id}).encode())).decode()

    async with browser(app) as http:
        http.cookies.set("omnihub_session", legacy, domain="hub.test")
        before = await http.get("/api/agents/me")
        async with hub.work() as work:
            me = await work.session.get(Agent, agent.id)
            await end_sessions(work.session, me)
        after = await http.get("/api/agents/me")

    assert before.status_code == 200 and after.status_code == 401


# Sign-in rate limiting -------------------------------------------------------------------


async def test_repeated_wrong_passwords_for_one_email_are_refused_with_429_and_retry_after(
    client: httpx.AsyncClient, agent: SignedIn
):
    for _ in range(PER_EMAIL):
        assert (await sign_in(client, agent.email, "wrong guess!")).status_code == 401

    limited = await sign_in(client, agent.email)  # even the right password now
    other = await sign_in(client, "someone-else@omnihub.test", "wrong guess!")

    assert limited.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= WINDOW_SECONDS
    assert "set-cookie" not in limited.headers
    assert other.status_code == 401, "another e-mail from the same address is not limited yet"


async def test_a_form_sign_in_is_limited_too(client: httpx.AsyncClient, agent: SignedIn):
    for _ in range(PER_EMAIL):
        await client.post("/login", data={"email": agent.email, "password": "wrong guess!"})

    limited = await client.post("/login", data={"email": agent.email, "password": PASSWORD})

    assert limited.status_code == 429 and "retry-after" in limited.headers


async def test_one_address_guessing_many_accounts_is_limited(client: httpx.AsyncClient):
    for number in range(PER_ADDRESS):
        await sign_in(client, f"guess{number}@omnihub.test", "wrong guess!")

    limited = await sign_in(client, "fresh@omnihub.test", "wrong guess!")

    assert limited.status_code == 429


# The command line ------------------------------------------------------------------------

OMNIHUB = shutil.which("omnihub", path=str(Path(sys.executable).parent))


def run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    assert OMNIHUB is not None
    return subprocess.run(
        [OMNIHUB, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_password_and_deactivate_commands_end_tokens(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env["OMNIHUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env["OMNIHUB_SECRET_KEY"] = "x" * 40
    assert run(["migrate"], env).returncode == 0
    added = run(["agent", "add", "a@example.com", "--name", "A", "--password-stdin"], env, PASSWORD)
    assert added.returncode == 0, added.stderr
    assert run(["token", "create", "a@example.com"], env).returncode == 0

    short = run(["agent", "password", "a@example.com"], env, "short\n")
    changed = run(["agent", "password", "a@example.com"], env, NEW_PASSWORD + "\n")
    unknown = run(["agent", "deactivate", "nobody@example.com"], env)
    gone = run(["agent", "deactivate", "a@example.com"], env)

    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    assert changed.returncode == 0 and "1 API tokens revoked" in changed.stdout
    assert unknown.returncode == 2 and "no agent" in unknown.stderr
    assert gone.returncode == 0 and "deactivated" in gone.stdout
