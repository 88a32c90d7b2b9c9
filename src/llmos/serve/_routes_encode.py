"""Routes of encoder models: POST /v1/classify (classification) and POST /v1/embeddings (embedding)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from llmos.serve._errors import HttpError
from llmos.serve._schemas import ClassifyRequest, ClassifyResponse, EmbeddingRequest, EmbeddingResponse

__all__ = ["add_classify", "add_embeddings", "run_rows"]


async def run_rows(service: Any, rows: list[tuple[list[int], list[int] | None]]) -> list[Any]:
    """Queue the inputs (429 when they do not fit), wait for their batch(es) within the deadline
    (504 after it), return one output each; an input that failed fails the request with its error."""
    futures = service.worker.submit(rows)
    timeout_s = service.job.limits.timeout_s
    try:
        return await asyncio.wait_for(asyncio.gather(*futures), timeout=timeout_s)
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
        raise HttpError(422, "input mixes texts and [text, pair] lists; send one kind.", param="input")
    return list(raw), None  # type: ignore[arg-type]


def add_classify(app: Any, service: Any) -> None:
    from fastapi.responses import JSONResponse

    labels = service.info.label_names

    @app.post("/v1/classify", response_model=ClassifyResponse, tags=["inference"],
              summary="Classify texts (or text pairs): label, score and every label's probability")
    async def classify(request: ClassifyRequest) -> Any:
        service.check_model(request.model)
        texts, pairs = _inputs(request.input)
        service.check_inputs(len(texts))
        rows = service.tokenize(texts, pairs)
        service.check_lengths(rows)
        outputs = await run_rows(service, rows)
        names = labels or [str(i) for i in range(len(outputs[0]))]
        data = []
        for i, probs in enumerate(outputs):
            best = int(probs.argmax())
            data.append({"index": i, "label": names[best], "score": float(probs[best]),
                         "probabilities": {n: float(p) for n, p in zip(names, probs, strict=True)}})
        tokens = sum(len(ids) for ids, _ in rows)
        return JSONResponse({"object": "list", "model": service.model_id, "data": data,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def add_embeddings(app: Any, service: Any) -> None:
    from fastapi.responses import JSONResponse

    @app.post("/v1/embeddings", response_model=EmbeddingResponse, tags=["inference"],
              summary="Sentence embeddings (OpenAI's shape): mean-pooled, L2-normalised")
    async def embeddings(request: EmbeddingRequest) -> Any:
        service.check_model(request.model)
        texts = [request.input] if isinstance(request.input, str) else list(request.input)
        service.check_inputs(len(texts))
        width = service.width
        if request.dimensions is not None and request.dimensions != width:
            raise HttpError(422, f"dimensions {request.dimensions} is not available: this model's embeddings have "
                                 f"{width}; omit dimensions.", param="dimensions")
        rows = service.tokenize(texts)
        service.check_lengths(rows)
        outputs = await run_rows(service, rows)
        data = []
        for i, vector in enumerate(outputs):
            value: Any = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                          if request.encoding_format == "base64" else vector.tolist())
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(len(ids) for ids, _ in rows)
        return JSONResponse({"object": "list", "model": service.model_id, "data": data,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
