"""The OpenAPI document of one server, made exact: every status code each route can answer (with
OpenAI's error shape), the bearer scheme when an API key is set, `text/event-stream` for streaming
routes, and the maxima the server enforces from its limits (`max_tokens`, `n`, input counts).

FastAPI writes the document from the routes; this adds what it cannot know (the Guard in front
of the app answers 401, 413, 429 and 503 before a route runs)."""

from __future__ import annotations

from typing import Any

from llmos.serve._schemas import ErrorResponse

__all__ = ["complete_document"]

_HEALTH = {"/healthz", "/readyz"}
_STREAMING = {"/v1/completions", "/v1/chat/completions"}
_DESCRIPTIONS = {
    400: "the body is not a JSON object, a parameter is unknown or cannot be honoured, text is not Unicode, or a "
         "field's value is invalid (the message names the field and the limit)",
    401: "missing or wrong API key", 404: "no such model here", 413: "the body or the number of inputs is too large",
    429: "the queue is full; retry after the Retry-After header's seconds", 500: "the server failed (see its log)",
    503: "the model is loading or the server is draining", 504: "the request's deadline passed"}
# Before OpenAPI 3.2 (itemSchema), an event stream's `schema` describes one event.
_SSE = {"schema": {"type": "object", "required": ["data"], "description": (
    "server-sent events: one `data: {chunk}` per piece of text (a JSON chunk in OpenAI's shape), then `data: [DONE]`"),
    "properties": {"data": {"type": "string"}, "event": {"type": "string", "enum": ["message"]}}}}


def _statuses(path: str, method: str, keyed: bool) -> set[int]:
    """The error statuses a route can answer: the Guard's (auth, body size, readiness) and its own."""
    if path in _HEALTH:
        return {503} if path == "/readyz" else set()
    codes = {413} | ({401} if keyed else set())
    if path != "/metrics":
        codes.add(503)
    if path.startswith("/v1/models/"):
        codes.add(404)
    if method == "post":
        codes |= {400, 404, 429, 500, 504}
    return codes


def _bound(prop: dict[str, Any], key: str, value: int) -> None:
    """Set `key` on the schema (or its anyOf branch) where it applies: integers for maxima, arrays for maxItems."""
    kind = "array" if key.endswith("Items") else "integer"
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == kind:
            branch[key] = value


def _limits(schemas: dict[str, Any], limits: Any) -> None:
    inputs, tokens = limits.max_inputs, limits.max_new_tokens
    token_fields = {"CompletionRequest": ("max_tokens",), "ChatRequest": ("max_tokens", "max_completion_tokens")}
    for name, fields in token_fields.items():
        props = schemas.get(name, {}).get("properties", {})
        for field in fields:
            if field in props:
                _bound(props[field], "maximum", tokens)
        if "n" in props:
            _bound(props["n"], "maximum", inputs)
    for name, field in (("CompletionRequest", "prompt"), ("EmbeddingRequest", "input"), ("ClassifyRequest", "input")):
        prop = schemas.get(name, {}).get("properties", {}).get(field)
        if prop is not None:
            _bound(prop, "minItems", 1)
            _bound(prop, "maxItems", inputs)


def complete_document(doc: dict[str, Any], service: Any) -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _, defs = models_json_schema([(ErrorResponse, "serialization")], ref_template="#/components/schemas/{model}")
    schemas.update(defs.get("$defs", {}))
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    keyed = bool(service.api_key)
    if keyed:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                    "description": "Authorization: Bearer KEY"}}
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            responses = op.setdefault("responses", {})
            codes = _statuses(path, method, keyed)
            responses.pop("422", None)  # FastAPI declares one; bad values answer 400 here, as OpenAI's do
            for code in sorted(codes):
                responses[str(code)] = {"description": _DESCRIPTIONS.get(code, "error"), "content": error}
            if path in _STREAMING and "200" in responses:
                responses["200"].setdefault("content", {})["text/event-stream"] = _SSE
            if keyed:
                op["security"] = [] if path in _HEALTH else [{"bearer": []}]
    _limits(schemas, service.job.limits)
    _names(doc, schemas, sorted(service.names))
    return doc


def _names(doc: dict[str, Any], schemas: dict[str, Any], names: list[str]) -> None:
    """`model` takes the names this server answers to (any other is a 404): say which."""
    for schema in schemas.values():
        prop = schema.get("properties", {}).get("model")
        if prop is not None:
            for branch in prop.get("anyOf", [prop]):
                if branch.get("type") == "string":
                    branch["enum"] = names
    for param in doc.get("paths", {}).get("/v1/models/{model}", {}).get("get", {}).get("parameters", []):
        if param.get("name") == "model":
            param["schema"]["enum"] = names
