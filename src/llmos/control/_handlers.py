"""How the control API answers errors: one shape, {"error", "hint", "problems"}, for llmos's own
errors and the framework's (422 validation, 404 unknown route, 405, 413), never a traceback; the
Guard middleware in front (body limit, NUL bytes, 64-bit integers, the audit row of every refusal);
and the completed OpenAPI document."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from llmos.control._errors import error_body
from llmos.errors import LlmosError, SpecError

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

__all__ = ["install"]

_log = logging.getLogger("llmos.control")
DEFAULT_MAX_BODY_BYTES = 1_000_000


def install(app: FastAPI, service: Any) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from sqlalchemy.exc import DataError
    from starlette.exceptions import HTTPException

    from llmos.control._guard import Guard

    def answer(request: Request, status: int, message: str, hint: str | None,
               problems: list[tuple[str, str]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
        request.state.error = message
        return JSONResponse(error_body(message, hint, problems), status_code=status, headers=headers)

    @app.exception_handler(LlmosError)
    async def llmos_error(request: Request, exc: LlmosError) -> JSONResponse:
        status = getattr(exc, "status", 422 if isinstance(exc, SpecError) else 400)
        problems = list(getattr(exc, "problems", []) or [])
        request.state.audit = getattr(exc, "audit", None)  # (action, target) the service named
        return answer(request, status, exc.message.split("\n", 1)[0] if problems else exc.message, exc.hint,
                      problems)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [(".".join(str(p) for p in e["loc"]) or "request", e["msg"]) for e in exc.errors()]
        return answer(request, 422, f"the request has {len(problems)} invalid value(s):",
                      "Fix the values named in problems (GET /openapi.json describes every route).", problems[:20])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        hints = {404: "No such route; GET /openapi.json lists them.",
                 405: "This route does not take that method; GET /openapi.json lists each route's methods."}
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route matched
            headers["Allow"] = ", ".join(_methods(app, request.scope))
        return answer(request, exc.status_code, str(exc.detail), hints.get(exc.status_code), headers=headers)

    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value the checks before it let through (a string too long for its column).
        return answer(request, 422, f"a value does not fit the state database: {str(exc.orig).splitlines()[0]}",
                      "Shorten the names and values in the request.")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        _log.error("request %s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc,
                   exc_info=exc)
        return answer(request, 500, f"the control plane failed on this request ({type(exc).__name__}).",
                      "This is a bug in llmos: its log (LLMOS_HOME/control/daemon.log) has the traceback; "
                      "please report it.")

    from llmos.control._audit import key, seal_legacy
    from llmos.control._db import write

    key()  # the audit chain's key exists (0600) from the first start on, not from the first audited call
    with write(service.engine) as conn:
        seal_legacy(conn)  # rows from before the chain (an upgraded database) verify from the start
    limit = getattr(service.config, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    app.add_middleware(Guard, engine=service.engine, max_body_bytes=limit, identify=service.caller)
    _complete_openapi(app)


def _methods(app: FastAPI, scope: dict[str, Any]) -> list[str]:
    from starlette.routing import Match

    found: set[str] = set()
    for route in app.routes:
        methods = getattr(route, "methods", None)
        if methods and route.matches({**scope, "method": next(iter(methods))})[0] == Match.FULL:
            found |= set(methods)
    return sorted(found)


def _complete_openapi(app: FastAPI) -> None:
    from fastapi.openapi.utils import get_openapi

    from llmos.control._openapi import complete_document

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = complete_document(doc)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
