"""The console's pages: sign-in at `/`, sign-out, the agent's language, and `/console`.

Sign-in sets a signed, HttpOnly, SameSite=Lax session cookie holding the agent's
id and session epoch (`hub.session_guard`). A wrong e-mail and a wrong password
get the same answer in the same time; repeated failures are refused with 429
(`hub.signin_limits`).
Every form carries the session's CSRF token and every state-changing request
is checked (`hub.csrf`); signing in starts a new session, and so a new token.

`router` is the whole console: these pages, its fragments (`agent_ui.console`),
e-mail bodies and attachments (`agent_ui.mail_bodies`), the agent socket
(`agent_ui.socket`) and its static files, served from the hub itself.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from agent_ui import console, mail_bodies, socket
from agent_ui.i18n import LANGUAGES, language_of
from agent_ui.rendering import render
from hub.agents import authenticate
from hub.api.deps import get_hub
from hub.context import Hub
from hub.csrf import TOKEN_FIELD, is_request_allowed
from hub.errors import InvalidInputError
from hub.models import Agent
from hub.session_guard import start_session
from hub.signin_limits import check_signin_allowed, record_signin

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}


async def _form(request: Request) -> dict[str, str]:
    is_json = request.headers.get("content-type", "").startswith("application/json")
    raw = await (request.json() if is_json else request.form())
    return {key: str(value) for key, value in raw.items()}


def _check_csrf(request: Request, form: dict[str, str]) -> None:
    if not is_request_allowed(request, request.method, form.get(TOKEN_FIELD)):
        raise HTTPException(403, "cross-site request refused")


def _accepts_json(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("application/json")


@router.get("/")
async def signin_page(request: Request, lang: str | None = None) -> Response:
    if isinstance(request.session.get("agent_id"), int):
        return RedirectResponse("/console", status_code=303)
    return render(request, "signin.html", None, language=lang)


@router.post("/login")
async def login(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    credentials = await _form(request)
    _check_csrf(request, credentials)
    email, password = credentials.get("email", ""), credentials.get("password", "")
    await check_signin_allowed(request, email)
    async with hub.sessions() as session:
        agent = await authenticate(session, email, password)
    await record_signin(request, email, agent is not None)
    if agent is None:
        if _accepts_json(request):
            return JSONResponse({"detail": "wrong e-mail or password"}, status_code=401)
        language = credentials.get("lang")
        return render(request, "signin.html", None, 401, language, False, error=True, email=email)
    request.session.clear()
    start_session(request.session, agent)
    if _accepts_json(request):
        return JSONResponse({"id": agent.id, "name": agent.name, "role": agent.role})
    return RedirectResponse("/console", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    _check_csrf(request, await _form(request))
    request.session.clear()
    return RedirectResponse("/", status_code=303)


async def _signed_in(request: Request, hub: Hub) -> Agent | None:
    agent_id = request.session.get("agent_id")
    if not isinstance(agent_id, int):
        return None
    async with hub.sessions() as session:
        agent = await session.get(Agent, agent_id)
    return agent if agent is not None and agent.is_active else None


@router.post("/console/language")
async def set_language(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    """The agent's console language (`de` or `en`), kept on the agent."""
    form = await _form(request)
    _check_csrf(request, form)
    agent = await _signed_in(request, hub)
    if agent is None:
        return RedirectResponse("/", status_code=303)
    wanted = form.get("language", "")
    if wanted not in LANGUAGES:
        raise InvalidInputError(f"language must be one of {', '.join(LANGUAGES)}", field="language")
    async with hub.work() as work:
        me = await work.session.get(Agent, agent.id)
        assert me is not None
        me.language = wanted
    return RedirectResponse("/console", status_code=303)


@router.get("/console")
async def console_page(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    agent = await _signed_in(request, hub)
    if agent is None:
        return RedirectResponse("/", status_code=303)
    last_id = getattr(hub.bus, "last_id", None)
    async with hub.sessions() as session:
        lists = await console.lists_context(session, agent)
    return render(
        request,
        "console.html",
        agent,
        last_event_id=last_id() if last_id is not None else 0,
        language=language_of(agent.language),
        **lists,
    )


@router.get("/console/static/{name}")
async def static_file(name: str) -> Response:
    """The console's own scripts and styles; only files that are there, by plain name."""
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES:
        raise HTTPException(404, "no such file")
    if not path.is_file():
        vendored = STATIC_DIR / "vendor" / name
        if not vendored.is_file():
            raise HTTPException(404, "no such file")
        path = vendored
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}
    return FileResponse(path, media_type=STATIC_TYPES[path.suffix], headers=headers)


for part in (console.router, mail_bodies.router, socket.router):
    router.include_router(part)
