"""The control API's OpenAPI document, made exact: the bearer scheme on every route that needs a
token, and every status code each route can answer, each with the one error shape.

FastAPI writes the document from the routes; this adds what it cannot know: the Guard in front of
the app answers 413 and 422 on any route, the token check 401, the role checks 403, and the
service 400, 404 and 409 from inside a route. A route may declare more with `responses=`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR_SCHEMA", "complete_document"]

ERROR_SCHEMA = {
    "title": "Error", "type": "object", "required": ["error", "hint", "problems"],
    "description": "every error answer: what is wrong, the fix, and each problem with where it is",
    "properties": {
        "error": {"type": "string"},
        "hint": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "problems": {"type": "array", "items": {
            "type": "object", "required": ["path", "message"],
            "properties": {"path": {"type": "string"}, "message": {"type": "string"}}}}}}
_DESCRIPTIONS = {
    400: "the request cannot be carried out as asked (the message says why)",
    401: "no token, or an unknown or revoked one", 403: "the token's role may not do this",
    404: "no such job, token, deployment or file", 409: "it contradicts the current state",
    413: "the request body is above max_body_bytes",
    422: "a value is invalid (NUL byte, integer beyond 64 bits, a spec error): each problem names its field"}
_OPEN = {"/healthz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
_ADMIN_READS = ("/v1/tokens", "/v1/audit")


def statuses(path: str, method: str) -> set[int]:
    """The error statuses a route can answer."""
    codes = {413, 422}
    if path in _OPEN:
        return codes
    codes |= {400, 401}
    if method != "get" or path.startswith(_ADMIN_READS):
        codes.add(403)
    if "{" in path:
        codes.add(404)
    if method != "get":
        codes |= {404, 409}
    return codes


def complete_document(doc: dict[str, Any]) -> dict[str, Any]:
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    schemes = components.setdefault("securitySchemes", {})
    schemes.clear()  # FastAPI's name for it ("HTTPBearer") becomes "bearer"
    schemes["bearer"] = {"type": "http", "scheme": "bearer",
                         "description": "Authorization: Bearer TOKEN (LLMOS_HOME/control/admin.token, "
                                        "or one made by llmos tokens create)"}
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            responses = op.setdefault("responses", {})
            codes = statuses(path, method) | {int(c) for c in responses if c.isdigit() and int(c) >= 400}
            for code in sorted(codes):
                described = responses.get(str(code), {}).get("description")
                responses[str(code)] = {"description": described or _DESCRIPTIONS.get(code, "error"),
                                        "content": error}
            op["responses"] = dict(sorted(responses.items()))
            op["security"] = [] if path in _OPEN else [{"bearer": []}]
    return doc
