"""Canned responses: `templates/canned/NAME.LANG.txt`, first line `Title: …`.

They are rendered in the customer's language (English when there is none for
it) in a sandbox where an unknown field is an error, so a canned answer never
reaches a customer with a blank where their name should be. The fields:
`customer_name`, `first_name`, `company`, `agent_name`, `conversation_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from hub.errors import NotFoundError
from templates import TEMPLATE_DIR

CANNED_DIR = TEMPLATE_DIR / "canned"
FALLBACK = "en"

_environment = SandboxedEnvironment(
    loader=FileSystemLoader(CANNED_DIR),
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
)


@dataclass(frozen=True, slots=True)
class Canned:
    name: str
    title: str
    text: str


def _language_file(name: str, language: str | None) -> str:
    wanted = (language or FALLBACK).lower()[:2]
    chosen = wanted if (CANNED_DIR / f"{name}.{wanted}.txt").exists() else FALLBACK
    if not (CANNED_DIR / f"{name}.{chosen}.txt").exists():
        raise NotFoundError(f"no canned response {name}")
    return f"{name}.{chosen}.txt"


def names() -> list[str]:
    return sorted({path.name.split(".")[0] for path in CANNED_DIR.glob("*.txt")})


def render_canned(name: str, language: str | None, fields: dict[str, Any]) -> Canned:
    if name not in names():
        raise NotFoundError(f"no canned response {name}")
    rendered = _environment.get_template(_language_file(name, language)).render(fields)
    first, _, body = rendered.partition("\n")
    return Canned(name, first.removeprefix("Title:").strip(), body.strip("\n"))


def list_canned(language: str | None, fields: dict[str, Any]) -> list[Canned]:
    return [render_canned(name, language, fields) for name in names()]


def fields_for(customer: Any, agent: Any, conversation_id: int) -> dict[str, Any]:
    name = (customer.name or "").strip()
    return {
        "customer_name": name,
        "first_name": name.split(" ")[0] if name else "",
        "company": customer.company or "",
        "agent_name": agent.name,
        "conversation_id": conversation_id,
    }
