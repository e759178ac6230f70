"""HTML mail bodies: sanitised with nh3 for display, rendered to plain text.

`sanitise_html` output is fit to show (no script/style, no event handlers, no
javascript: URLs; `cid:` URLs kept for inline images). `render_text` keeps the
text only, with block elements on their own lines. Both are pure; the caller
decides what a failure falls back to.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

_SAFE_URL_SCHEMES = nh3.ALLOWED_URL_SCHEMES | {"cid"}


def sanitise_html(html: str) -> str:
    """HTML fit to display: no script/style, no event handlers, no javascript: URLs."""
    return nh3.clean(html, url_schemes=_SAFE_URL_SCHEMES)


class _TextRenderer(HTMLParser):
    BLOCKS = frozenset(
        {"p", "div", "br", "tr", "li", "ul", "ol", "hr", "pre", "table", "section"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}
    )
    SKIPPED = frozenset(("script", "style", "head", "title"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.chunks.append(re.sub(r"[ \t\r\n]+", " ", data))


def render_text(html: str) -> str:
    """A plain-text rendering of HTML: text only, blocks on their own lines."""
    renderer = _TextRenderer()
    renderer.feed(html)
    renderer.close()
    lines = (line.strip() for line in "".join(renderer.chunks).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
