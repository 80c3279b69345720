"""The OpenAPI schema documents the API of portal.api.urls only.

Every /api/v1/ route is there (it is the project's one REST front); this generator is also what
`manage.py check --deploy` builds, so a schema warning fails the deploy check.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.generators import SchemaGenerator

API_URLCONF = "portal.api.urls"


class ApiSchemaGenerator(SchemaGenerator):
    def __init__(self, *args: Any, urlconf: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, urlconf=urlconf or API_URLCONF, **kwargs)


ERROR_COMPONENT = {
    "type": "object",
    "description": "Every error of the API: what went wrong, in words, and the field at fault if any.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "example": "range_too_long"},
                "message": {"type": "string"},
                "field": {"type": "string", "nullable": True},
            },
            "required": ["code", "message", "field"],
        }
    },
    "required": ["error"],
}
ERROR_STATUSES = {
    "400": "Invalid input (the field at fault is named).",
    "401": "No credentials, or an unknown or revoked token.",
    "403": "The credentials do not allow this action (scope or role).",
    "404": "No such object among those the caller may see.",
    "429": "Too many requests: wait for Retry-After seconds.",
}
BODY_ERROR_STATUSES = {"413": "The request body is too large."}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """A drf-spectacular postprocessing hook: every operation documents the error format it may answer."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_COMPONENT
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            statuses = {**ERROR_STATUSES, **(BODY_ERROR_STATUSES if method in ("post", "put", "patch") else {})}
            responses = operation.setdefault("responses", {})
            for code, description in statuses.items():
                responses.setdefault(code, {"description": description, "content": reference})
    return result
