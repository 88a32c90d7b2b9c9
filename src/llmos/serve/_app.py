"""The ASGI application of one served model: health, models, metrics and the task's own routes
(only those, so the OpenAPI document lists exactly what this server answers)."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime, and
# `Response` is imported inside create_app, where a string annotation could not be resolved.
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from llmos.serve._errors import HttpError, error_body, request_error, server_error_body
from llmos.serve._guard import Guard
from llmos.serve._schemas import UNSUPPORTED, ModelCard, ModelList

__all__ = ["create_app"]

_log = logging.getLogger(__name__)
_TASK_ROUTES = {"classification": ["/v1/classify"], "embedding": ["/v1/embeddings"],
                "causal-lm": ["/v1/completions", "/v1/chat/completions"]}


def create_app(service: Any, on_load_failure: Callable[[BaseException], None] | None = None) -> Any:
    """The app, wrapped in the Guard middleware. Loading starts in a thread when the app starts."""
    from fastapi import FastAPI, Response
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from llmos import __version__

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        thread = threading.Thread(target=_load, args=(service, on_load_failure), name="llmos-model-loader",
                                  daemon=True)
        thread.start()
        yield
        service.stop()

    task = service.info.task
    app = FastAPI(title=f"llmos serve: {service.model_id}", version=__version__, lifespan=lifespan,
                  description=f"{service.source.ref} (version {service.source.version}, {task}).")

    @app.exception_handler(HttpError)
    async def http_error(_: Any, exc: HttpError) -> Response:
        return Response(exc.body(), status_code=exc.status, media_type="application/json", headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_exception(_: Any, exc: StarletteHTTPException) -> Response:
        # Unknown paths (404) and methods (405), in the same error shape as every other answer.
        return Response(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code,
                        media_type="application/json", headers=exc.headers)

    @app.exception_handler(Exception)
    async def crashed(_: Any, exc: Exception) -> Response:
        _log.error("request failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
        return Response(server_error_body(exc), status_code=500, media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Any, exc: RequestValidationError) -> Response:
        status, body = request_error(exc.errors(), UNSUPPORTED)
        return Response(body, status_code=status, media_type="application/json")

    @app.get("/healthz", tags=["health"], summary="200 while the process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", tags=["health"], summary="200 when warmed up and not draining, else 503",
             responses={503: {"description": "loading, draining or failed"}})
    async def readyz() -> Response:
        state = ("draining" if service.draining else "failed" if service.failed else
                 "ready" if service.ready else "loading")
        return Response(f'{{"status": "{state}"}}', status_code=200 if state == "ready" else 503,
                        media_type="application/json")

    def card() -> dict[str, Any]:
        runtime = service.runtime
        return {"id": service.model_id, "object": "model", "created": service.created, "owned_by": "llmos",
                "task": task, "version": service.source.version,
                "runtime": runtime.name if runtime else "loading",
                "precision": runtime.precision if runtime else "loading",
                "packing": getattr(runtime, "packing", "off") if runtime else "loading",
                "compiled": getattr(runtime, "compiled", "off") if runtime else "loading"}

    @app.get("/v1/models", response_model=ModelList, tags=["models"], summary="The served model (OpenAI's shape)")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [card()]}

    @app.get("/v1/models/{model:path}", response_model=ModelCard, tags=["models"],
             summary="One model by its id (any name this server answers to); 404 for others")
    async def model(model: str) -> dict[str, Any]:
        service.check_model(model)
        return card()

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        body, content_type = service.metrics.render()
        return Response(body, media_type=content_type)

    direct: dict[str, Any] = {}
    if task == "causal-lm":
        from llmos.serve._routes_generate import add_generation

        add_generation(app, service)
    else:
        from llmos.serve._routes_encode import DIRECT, add_classify, add_embeddings

        (add_classify if task == "classification" else add_embeddings)(app, service)
        direct = {path: DIRECT[path] for path in _TASK_ROUTES[task]}
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            from llmos.serve._openapi import complete_document

            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = complete_document(doc, service)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    routes = {"/v1/models", "/metrics", "/openapi.json", *_TASK_ROUTES[task]}
    guarded = Guard(app, service, routes, set(_TASK_ROUTES[task]), direct)
    guarded.fastapi = app  # type: ignore[attr-defined]  # for callers that want the FastAPI object
    return guarded


def _load(service: Any, on_failure: Callable[[BaseException], None] | None) -> None:
    try:
        service.load()
    except BaseException as exc:
        service.failed = exc
        _log.error("loading the model failed: %s", exc)
        if on_failure is not None:
            on_failure(exc)
