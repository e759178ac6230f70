"""The OpenAPI document tells the truth about the hub's error answers.

FastAPI documents a 422 answer as its own validation error (`detail` a list
of problems), but the hub's checks answer 422 too, through `hub.errors`, with
`detail` a sentence and `field` the field it is about. This adds that second
shape, `HubError`, to every 422 in the document, so that a client generated
from `/openapi.json` (and schemathesis, tests/test_openapi_fuzz.py) accepts
both.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

HUB_ERROR = {
    "title": "HubError",
    "type": "object",
    "properties": {
        "detail": {"type": "string", "title": "Detail"},
        "field": {"type": "string", "title": "Field"},
    },
    "required": ["detail"],
}
VALIDATION = {"$ref": "#/components/schemas/HTTPValidationError"}


def with_hub_errors(document: dict[str, Any]) -> dict[str, Any]:
    """The document with `HubError` added beside FastAPI's validation error on every 422."""
    document.setdefault("components", {}).setdefault("schemas", {})["HubError"] = HUB_ERROR
    hub_error = {"$ref": "#/components/schemas/HubError"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            content = (answer or {}).get("content", {}).get("application/json")
            if content is not None and content.get("schema") == VALIDATION:
                content["schema"] = {"anyOf": [VALIDATION, hub_error]}
    return document


def document_hub_errors(app: FastAPI) -> None:
    """Make `app.openapi()` describe the hub's own 422 answers too (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_hub_errors(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
