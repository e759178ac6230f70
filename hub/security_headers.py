"""Security headers on every HTTP answer the hub gives.

    Content-Security-Policy   no inline script, no plugin, no foreign origin:
                              script, style, image, font and fetch from the hub
                              itself; the inline `<style>` blocks of our own
                              templates are allowed by their SHA-256 alone
    frame-ancestors 'none'    no site may frame a hub page (clickjacking) ...
                              ... except the web form (`/channels/webform…`),
                              which is made to sit in an iframe on the
                              customer's own site: no frame-ancestors there
    X-Content-Type-Options    nosniff: a file is what its Content-Type says
    Referrer-Policy           same-origin: a link out of the console does not
                              tell the other site which conversation was open
    X-Frame-Options           DENY, for browsers older than frame-ancestors
                              (none on the web form: ALLOW-FROM is dead)

The API documentation pages FastAPI draws (`/docs`, `/redoc`) load Swagger UI
and ReDoc from their CDN and start them with an inline script: they get a
policy of their own naming that CDN and the SHA-256 of the very script in the
answer (computed per answer, so no inline script is allowed by kind), and,
for the third-party UI's injected styles only, 'unsafe-inline' styles. These
pages hold no data; the document they read is public anyway.

An answer that sets its own policy keeps it, and gets no X-Frame-Options that
could contradict its frame-ancestors (the e-mail body view, framed by the
console, and its attachments are stricter still: `agent_ui.mail_bodies`; the
console's pages set theirs in `agent_ui.rendering`). The middleware
is plain ASGI, so it also covers errors, redirects and static files; a
websocket has no headers of this kind and passes untouched.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

import jinja2
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

EMBEDDABLE_PREFIXES = ("/channels/webform",)
DOC_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")
DOC_CDN = "https://cdn.jsdelivr.net"
_STYLE_BLOCK = re.compile(r"<style>(.*?)</style>", re.DOTALL)
_SCRIPT_BLOCK = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_JINJA = ("{{", "{%")


def style_hashes(template_dir: Path) -> list[str]:
    """CSP sources for the inline `<style>` blocks of our templates that hold no Jinja."""
    found: set[str] = set()
    plain = jinja2.Environment(autoescape=False)  # noqa: S701 - renders our own CSS only
    for template in sorted(template_dir.rglob("*.html")):
        for block in _STYLE_BLOCK.findall(template.read_text(encoding="utf-8")):
            if not any(mark in block for mark in _JINJA):  # comments ({# #}) are fine
                found.add(_sha256_source(plain.from_string(block).render()))
    return sorted(found)


def content_policy(styles: Iterable[str], frame_ancestors: str | None) -> str:
    style_sources = " ".join(["'self'", *styles])
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            f"style-src {style_sources}",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            *([f"frame-ancestors {frame_ancestors}"] if frame_ancestors else []),
        )
    )


def docs_policy(html: str) -> str:
    """The policy of an API documentation page: its CDN and its own inline scripts."""
    scripts = " ".join(_sha256_source(block) for block in _SCRIPT_BLOCK.findall(html))
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' {DOC_CDN} {scripts}".rstrip(),
            f"style-src 'self' {DOC_CDN} https://fonts.googleapis.com 'unsafe-inline'",
            "font-src 'self' https://fonts.gstatic.com",
            "img-src 'self' data: https:",
            "worker-src 'self' blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        )
    )


def _sha256_source(block: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()}'"


def is_embeddable(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in EMBEDDABLE_PREFIXES)


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP answer that lacks them."""

    def __init__(self, app: ASGIApp, template_dir: Path) -> None:
        self.app = app
        styles = style_hashes(template_dir)
        self.framed_nowhere = self._headers(content_policy(styles, "'none'"), "DENY")
        # No frame-ancestors at all: `*` would still refuse a parent without a
        # network origin (about:blank, a sandboxed or srcdoc frame).
        self.framed_anywhere = self._headers(content_policy(styles, None), None)

    @staticmethod
    def _headers(policy: str, frame_options: str | None) -> dict[str, str]:
        headers = {
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        }
        if frame_options is not None:
            headers["X-Frame-Options"] = frame_options
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in DOC_PATHS:
            await self._docs(scope, receive, send)
            return
        wanted = self.framed_anywhere if is_embeddable(scope["path"]) else self.framed_nowhere

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                own = headers.get("content-security-policy")
                framed = own is not None and "frame-ancestors 'none'" not in own
                for name, value in wanted.items():
                    if name not in headers and not (framed and name == "X-Frame-Options"):
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold a documentation page back until its body is known, then add its policy."""
        start: Message | None = None
        body = b""

        async def hold(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                start = message
                return
            body += message.get("body", b"")
            if message.get("more_body", False) or start is None:
                return
            headers = MutableHeaders(scope=start)
            policy = self._headers(docs_policy(body.decode("utf-8", "replace")), "DENY")
            for name, value in policy.items():
                headers[name] = value
            del headers["content-length"]
            headers["content-length"] = str(len(body))
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, hold)
