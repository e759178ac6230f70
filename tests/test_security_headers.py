"""Security headers on every answer: a CSP without inline script, no framing, nosniff, referrer."""

from __future__ import annotations

import re

import httpx
import pytest

from agent_ui.pages import STATIC_DIR
from hub.security_headers import SecurityHeaders, _sha256_source, style_hashes
from templates import TEMPLATE_DIR
from tests.conftest import SignedIn

PASSWORD = "correct horse battery"

PAGES = (
    "/",
    "/console",
    "/console/kpis",
    "/console/campaigns",
    "/console/static/console.js",
    "/console/static/console.css",
    "/console/static/nothing.js",
    "/api/agents",
    "/api/conversations/999999",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/no/such/page",
    "/unsubscribe/not-a-token",
)


def directives(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    parts = (part.strip().split(" ", 1) for part in policy.split(";"))
    return {part[0]: part[1] if len(part) > 1 else "" for part in parts}


async def sign_in(client: httpx.AsyncClient, agent: SignedIn) -> None:
    answer = await client.post("/login", data={"email": agent.email, "password": PASSWORD})
    assert answer.status_code == 303


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_and_api_answer_carries_the_security_headers(
    client: httpx.AsyncClient, agent: SignedIn, path: str
):
    await sign_in(client, agent)

    response = await client.get(path)

    policy = directives(response)
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"


async def test_answers_without_a_session_and_errors_carry_them_too(client: httpx.AsyncClient):
    for response in (
        await client.get("/api/agents"),
        await client.post("/login", data={"email": "x@example.com", "password": "wrong one!"}),
        await client.post("/api/interactions", content=b"{", headers={"Authorization": "Bearer x"}),
    ):
        assert response.status_code in (401, 422), response.text
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/channels/webform", "/channels/webform/thanks?lang=en"])
async def test_the_web_form_may_be_framed_by_any_site_but_runs_no_inline_script(
    client: httpx.AsyncClient, path: str
):
    response = await client.get(path)

    policy = directives(response)
    assert "frame-ancestors" not in policy
    assert policy["script-src"] == "'self'"
    assert "x-frame-options" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_api_docs_allow_only_their_cdn_and_the_hash_of_their_own_script(
    client: httpx.AsyncClient,
):
    response = await client.get("/docs")

    scripts = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    policy = directives(response)
    assert scripts, "Swagger UI starts from an inline script"
    assert policy["script-src"].split() == [
        "'self'",
        "https://cdn.jsdelivr.net",
        *[_sha256_source(script) for script in scripts],
    ]
    assert "unsafe-inline" not in policy["script-src"]
    assert policy["frame-ancestors"] == "'none'"
    assert int(response.headers["content-length"]) == len(response.content)


async def test_an_answer_that_sets_its_own_policy_keeps_it_and_gets_no_frame_options():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    own = "default-src 'none'; frame-ancestors 'self'; sandbox"  # as the mail body view

    async def body(_request):
        return PlainTextResponse("x", headers={"Content-Security-Policy": own})

    app = SecurityHeaders(Starlette(routes=[Route("/body", body)]), TEMPLATE_DIR)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
    ) as http:
        response = await http.get("/body")

    assert response.headers["content-security-policy"] == own
    assert "x-frame-options" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_pages_outside_the_console_allow_inline_styles_only_by_their_hash(
    client: httpx.AsyncClient, agent: SignedIn
):
    # The console's own pages set their policy in agent_ui.rendering.
    pages = [await client.get("/channels/webform"), await client.get("/unsubscribe/nothing")]
    await sign_in(client, agent)
    pages.append(await client.get("/console/campaigns"))

    for page in pages:
        allowed = directives(page)["style-src"].split()
        assert "'unsafe-inline'" not in allowed
        for block in re.findall(r"<style>(.*?)</style>", page.text, re.DOTALL):
            assert _sha256_source(block) in allowed, page.url


def test_every_style_block_of_the_templates_is_hashed():
    assert len(style_hashes(TEMPLATE_DIR)) >= 3


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)
INLINE_STYLE_ATTRIBUTE = re.compile(r"<[^>]*\sstyle\s*=", re.I)
TEMPLATES = sorted(
    path.relative_to(TEMPLATE_DIR).as_posix()
    for path in TEMPLATE_DIR.rglob("*.html")
    if "messages" not in path.parts
)
KNOWN_INLINE: dict[str, str] = {}  # template name -> why it still has inline code


def _marks(name: str) -> list[pytest.MarkDecorator]:
    if name in KNOWN_INLINE:
        return [pytest.mark.xfail(strict=True, reason=KNOWN_INLINE[name])]
    return []


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=_marks(name), id=name) for name in TEMPLATES]
)
def test_no_template_has_inline_script_handlers_or_style_attributes(name: str):
    source = (TEMPLATE_DIR / name).read_text(encoding="utf-8")

    assert not INLINE_SCRIPT.search(source), "an inline <script> is blocked by the CSP"
    assert not INLINE_HANDLER.search(source), "an on...= handler is blocked by the CSP"
    assert not INLINE_STYLE_ATTRIBUTE.search(source), "a style= attribute is blocked by the CSP"


def test_the_console_scripts_add_no_inline_handlers():
    script = (STATIC_DIR / "console.js").read_text(encoding="utf-8")

    assert not re.search(r"setAttribute\(\s*[\"']on|\.on[a-z]+\s*=\s*[\"']", script)
