"""A campaign's content: Jinja2 templates per language, sandboxed, strict.

The template document is

    {"fallback": "en",
     "variants": {"en": {"subject": "...", "html": "...", "text": "..."},
                  "de": {...}}}

E-mail variants need `subject` and `text` (`html` is optional); SMS variants
need `text` only. Every part is parsed at save: a syntax error, a name the
hub does not provide, an unknown customer field or a name starting with `_`
is an `InvalidInputError` naming the variant, the part, the line and the name.
Rendering uses `SandboxedEnvironment` (no access to Python internals) with
`StrictUndefined`, so anything undefined at render time is an error at
preview, never a blank in a sent message. HTML parts are autoescaped.
`CompiledContent` compiles every part once per campaign.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.environment import Template
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from hub.errors import InvalidInputError

# What a template may use: {{ customer.name }}, {{ unsubscribe_url }}, {{ campaign.name }}.
CUSTOMER_FIELDS = ("id", "name", "first_name", "company", "tier", "language")
NAMES = {"customer": CUSTOMER_FIELDS, "campaign": ("name",), "unsubscribe_url": ()}
PARTS = {"email": ("subject", "html", "text"), "sms": ("text",)}
REQUIRED = {"email": ("subject", "text"), "sms": ("text",)}
LANGUAGE = re.compile(r"^[a-z]{2}$")
MAX_PART = 100_000

_text = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_html = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)


@dataclass(frozen=True, slots=True)
class Rendered:
    language: str
    text: str
    subject: str | None = None
    html: str | None = None


def check_template(channel: str, document: Any) -> dict[str, Any]:
    """The template document, normalised; raises InvalidInputError for anything wrong."""
    if channel not in PARTS:
        raise InvalidInputError("channel must be email or sms", field="channel")
    if not isinstance(document, dict) or not isinstance(document.get("variants"), dict):
        raise InvalidInputError("template needs `variants`: {language: parts}", field="template")
    variants = {
        _language(lang): _parts(channel, lang, parts)
        for lang, parts in document["variants"].items()
    }
    if not variants:
        raise InvalidInputError("template needs at least one language", field="template")
    fallback = document.get("fallback") or next(iter(variants))
    if fallback not in variants:
        raise InvalidInputError(f"fallback {fallback!r} has no variant", field="template")
    return {"fallback": fallback, "variants": variants}


def _language(language: Any) -> str:
    if not isinstance(language, str) or not LANGUAGE.match(language):
        raise InvalidInputError(
            f"variant {language!r}: a language is two lower-case letters", field="template"
        )
    return language


def _parts(channel: str, language: str, parts: Any) -> dict[str, str]:
    if not isinstance(parts, dict):
        raise InvalidInputError(f"variant {language}: parts must be an object", field="template")
    unknown = set(parts) - set(PARTS[channel])
    if unknown:
        raise InvalidInputError(
            f"variant {language}: {channel} has no part {sorted(unknown)[0]!r}", field="template"
        )
    for part in REQUIRED[channel]:
        if not isinstance(parts.get(part), str) or not parts[part].strip():
            raise InvalidInputError(f"variant {language}: {part} is required", field="template")
    checked = {}
    for part, source in parts.items():
        if source is None:
            continue
        if not isinstance(source, str) or len(source) > MAX_PART:
            raise InvalidInputError(
                f"variant {language}: {part} must be text up to {MAX_PART} characters",
                field="template",
            )
        _check_source(f"{language}/{part}", source, html=part == "html")
        checked[part] = source
    return checked


def _check_source(where: str, source: str, html: bool) -> None:
    environment = _html if html else _text
    try:
        tree = environment.parse(source)
    except TemplateSyntaxError as error:
        raise InvalidInputError(
            f"{where} line {error.lineno}: syntax error: {error.message}", field="template"
        ) from None
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load" and node.name not in NAMES and node.name not in assigned:
            raise InvalidInputError(
                f"{where} line {node.lineno}: unknown field {node.name!r}", field="template"
            )
    for node in tree.find_all(nodes.Getattr):
        _check_attribute(where, node.node, node.attr, node.lineno)
    for node in tree.find_all(nodes.Getitem):
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            _check_attribute(where, node.node, node.arg.value, node.lineno)


def _check_attribute(where: str, owner: nodes.Node, attribute: str, line: int) -> None:
    if attribute.startswith("_"):
        raise InvalidInputError(
            f"{where} line {line}: {attribute!r} is not allowed", field="template"
        )
    if isinstance(owner, nodes.Name) and owner.name in NAMES and attribute not in NAMES[owner.name]:
        raise InvalidInputError(
            f"{where} line {line}: unknown field {owner.name}.{attribute}", field="template"
        )


class CompiledContent:
    """A template document compiled once; `render` picks the customer's language."""

    def __init__(self, channel: str, document: dict[str, Any], campaign_name: str) -> None:
        self.channel = channel
        self.fallback = document["fallback"]
        self.campaign = {"name": campaign_name}
        self.variants: dict[str, dict[str, Template]] = {
            language: {
                part: (_html if part == "html" else _text).from_string(source)
                for part, source in parts.items()
            }
            for language, parts in document["variants"].items()
        }

    def language_for(self, language: str | None) -> str:
        wanted = (language or "").lower()[:2]
        return wanted if wanted in self.variants else self.fallback

    def render(self, customer: dict[str, Any], unsubscribe_url: str | None = None) -> Rendered:
        """Raises InvalidInputError naming the variant, part, line and what was undefined."""
        language = self.language_for(customer.get("language"))
        context = {
            "customer": customer,
            "campaign": self.campaign,
            "unsubscribe_url": unsubscribe_url or "",
        }
        parts = {
            part: _render(f"{language}/{part}", template, context)
            for part, template in self.variants[language].items()
        }
        return Rendered(language, parts["text"], parts.get("subject"), parts.get("html"))


def _render(where: str, template: Template, context: dict[str, Any]) -> str:
    try:
        return template.render(context)
    except (UndefinedError, SecurityError) as error:
        line = _template_line(sys.exc_info()[2])
        at = f" line {line}" if line else ""
        raise InvalidInputError(f"{where}{at}: {error.message}", field="template") from None


def _template_line(traceback: Any) -> int | None:
    """The template line of the innermost frame Jinja2 mapped back to the template."""
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def customer_context(
    customer_id: int, name: str, company: str | None, tier: str | None, language: str | None
) -> dict[str, Any]:
    """What a template sees of a customer: a plain dict, never the model."""
    return {
        "id": customer_id,
        "name": name,
        "first_name": name.split()[0] if name.split() else "",
        "company": company or "",
        "tier": tier or "",
        "language": language or "",
    }
