"""Signing in: a signed, HttpOnly, SameSite session cookie that the API accepts."""

from __future__ import annotations

import httpx

from tests.conftest import SignedIn

PASSWORD = "correct horse battery"


async def test_signing_in_sets_a_signed_httponly_samesite_cookie(
    client: httpx.AsyncClient, agent: SignedIn
):
    response = await client.post("/login", data={"email": agent.email, "password": PASSWORD})

    assert response.status_code == 303 and response.headers["location"] == "/console"
    cookie = response.headers["set-cookie"].lower()
    assert "omnihub_session=" in cookie
    assert "httponly" in cookie and "samesite=lax" in cookie


async def test_the_session_cookie_opens_the_api_and_the_console(
    client: httpx.AsyncClient, agent: SignedIn
):
    await client.post("/login", data={"email": agent.email, "password": PASSWORD})

    me = await client.get("/api/agents/me")
    console = await client.get("/console")

    assert me.status_code == 200 and me.json()["email"] == agent.email
    assert console.status_code == 200 and "Open conversations" in console.text


async def test_a_wrong_password_or_unknown_email_gets_the_same_answer(
    client: httpx.AsyncClient, agent: SignedIn
):
    wrong = await client.post("/login", data={"email": agent.email, "password": "nope nope nope"})
    unknown = await client.post("/login", data={"email": "who@example.com", "password": PASSWORD})

    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong e-mail or password." in wrong.text and "Wrong e-mail or password." in unknown.text
    assert "set-cookie" not in wrong.headers


async def test_signing_out_ends_the_session(client: httpx.AsyncClient, agent: SignedIn):
    await client.post("/login", json={"email": agent.email, "password": PASSWORD})

    await client.post("/logout")

    assert (await client.get("/api/agents/me")).status_code == 401
    assert (await client.get("/console")).headers["location"] == "/"


async def test_a_tampered_cookie_is_not_a_session(client: httpx.AsyncClient, agent: SignedIn):
    await client.post("/login", json={"email": agent.email, "password": PASSWORD})
    value = client.cookies["omnihub_session"]
    client.cookies.set("omnihub_session", value[:-4] + "AAAA", domain="hub.test")

    assert (await client.get("/api/agents/me")).status_code == 401


async def test_a_cross_site_post_with_the_cookie_is_refused(
    client: httpx.AsyncClient, agent: SignedIn
):
    await client.post("/login", json={"email": agent.email, "password": PASSWORD})

    forged = await client.put(
        "/api/agents/me/presence",
        json={"status": "online"},
        headers={"Origin": "https://evil.example"},
    )
    same_site = await client.put(
        "/api/agents/me/presence", json={"status": "online"}, headers={"Origin": "http://hub.test"}
    )

    assert forged.status_code == 403
    assert same_site.status_code == 200
