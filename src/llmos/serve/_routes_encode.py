"""Routes of encoder models: POST /v1/classify (classification) and POST /v1/embeddings (embedding).

Each route is a plain handler, `(service, parsed request) -> response body`. FastAPI declares it
(request and response schemas for the OpenAPI document), but the `Guard` in front of the app
calls the handler itself for a JSON body (`DIRECT`): FastAPI's middleware stack, routing and
response machinery cost the event loop about as much per request as parsing and tokenizing,
and on a small machine every millisecond the loop spends is taken from the forward passes.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from llmos.serve._errors import HttpError
from llmos.serve._schemas import ClassifyRequest, ClassifyResponse, EmbeddingRequest, EmbeddingResponse

__all__ = ["DIRECT", "add_classify", "add_embeddings", "classify", "embed", "run_rows"]

Handler = Callable[[Any, Any], Awaitable[dict[str, Any]]]


async def run_rows(service: Any, rows: list[tuple[list[int], list[int] | None]]) -> list[Any]:
    """Queue the inputs (429 when they do not fit), wait for their batch(es) within the deadline
    (504 after it), return one output each; an input that failed fails the request with its error."""
    futures = service.worker.submit(rows)
    timeout_s = service.job.limits.timeout_s
    try:
        async with asyncio.timeout(timeout_s):  # no extra task per request, unlike wait_for + gather
            return [await future for future in futures]
    except TimeoutError:
        raise HttpError(504, f"the request did not finish within its deadline (limits.timeout_s = "
                             f"{timeout_s:g} s).", code="deadline_exceeded") from None
    finally:
        for future in futures:  # after a timeout or a failed input: the rest need not run
            future.cancel()


def _inputs(raw: str | list[str] | list[list[str]]) -> tuple[list[str], list[str] | None]:
    if isinstance(raw, str):
        return [raw], None
    if raw and isinstance(raw[0], list):
        return [p[0] for p in raw], [p[1] for p in raw]  # type: ignore[index]
    if any(isinstance(x, list) for x in raw):
        raise HttpError(400, "input mixes texts and [text, pair] lists; send one kind.", param="input")
    return list(raw), None  # type: ignore[arg-type]


def _usage(rows: list[tuple[list[int], list[int] | None]]) -> dict[str, int]:
    tokens = sum(len(ids) for ids, _ in rows)
    return {"prompt_tokens": tokens, "total_tokens": tokens}


async def classify(service: Any, request: ClassifyRequest) -> dict[str, Any]:
    service.check_model(request.model)
    texts, pairs = _inputs(request.input)
    service.check_inputs(len(texts))
    rows = service.tokenize(texts, pairs)
    service.check_lengths(rows)
    outputs = await run_rows(service, rows)
    names = service.info.label_names or [str(i) for i in range(len(outputs[0]))]
    data = []
    for i, probs in enumerate(outputs):
        values = probs.tolist()  # one conversion, then plain floats
        best = max(range(len(values)), key=values.__getitem__)
        data.append({"index": i, "label": names[best], "score": values[best],
                     "probabilities": dict(zip(names, values, strict=True))})
    return {"object": "list", "model": service.model_id, "data": data, "usage": _usage(rows)}


async def embed(service: Any, request: EmbeddingRequest) -> dict[str, Any]:
    service.check_model(request.model)
    texts = [request.input] if isinstance(request.input, str) else list(request.input)
    service.check_inputs(len(texts))
    width = service.width
    if request.dimensions is not None and request.dimensions != width:
        raise HttpError(400, f"dimensions {request.dimensions} is not available: this model's embeddings have "
                             f"{width}; omit dimensions.", param="dimensions")
    rows = service.tokenize(texts)
    service.check_lengths(rows)
    outputs = await run_rows(service, rows)
    data = []
    for i, vector in enumerate(outputs):
        value: Any = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                      if request.encoding_format == "base64" else vector.tolist())
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "model": service.model_id, "data": data, "usage": _usage(rows)}


# POST routes the Guard answers itself: path -> (request schema, handler).
DIRECT: dict[str, tuple[type[BaseModel], Handler]] = {"/v1/classify": (ClassifyRequest, classify),
                                                      "/v1/embeddings": (EmbeddingRequest, embed)}


def add_classify(app: Any, service: Any) -> None:
    from fastapi.responses import JSONResponse

    @app.post("/v1/classify", response_model=ClassifyResponse, tags=["inference"],
              summary="Classify texts (or text pairs): label, score and every label's probability")
    async def classify_route(request: ClassifyRequest) -> Any:
        return JSONResponse(await classify(service, request))


def add_embeddings(app: Any, service: Any) -> None:
    from fastapi.responses import JSONResponse

    @app.post("/v1/embeddings", response_model=EmbeddingResponse, tags=["inference"],
              summary="Sentence embeddings (OpenAI's shape): mean-pooled, L2-normalised")
    async def embeddings_route(request: EmbeddingRequest) -> Any:
        return JSONResponse(await embed(service, request))
