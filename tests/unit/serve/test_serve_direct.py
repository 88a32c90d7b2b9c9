"""The encoder routes' direct path (the Guard answers JSON requests without FastAPI's stack) gives
what the FastAPI route gives, and the tokenizer's backend alone gives what the tokenizer gives."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.unit.serve.conftest import serve_job

from llmos.serve._service import direct_encoder

pytestmark = pytest.mark.timeout(120)

TEXTS = ["a gorgeous , witty , seductive movie .", "it 's not a bad film , but not a good one either",
         "  odd   spacing\tand\nnewlines ", "ÜNICODE naïve café — 東京 🙂", "unaffable", "x"]


@pytest.fixture(scope="module")
def cls_server(tiny_refs: dict[str, str], start_server: Any) -> Iterator[Any]:
    with start_server(serve_job(tiny_refs["classification"], limits={"max_inputs": 8})) as running:
        yield running


def _body(payload: Any) -> dict[str, Any]:
    return {"content": payload.encode()} if isinstance(payload, str) else {"json": payload}


def _through_fastapi(service: Any, requests: list[tuple[dict[str, Any], str]]) -> list[tuple[int, Any]]:
    """The same requests answered by the FastAPI app alone (a Guard with no direct routes)."""
    from llmos.serve._app import create_app

    guarded = create_app(service)
    guarded.direct = {}

    async def run() -> list[tuple[int, Any]]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url="http://t") as client:
            answers = []
            for payload, content_type in requests:
                r = await client.post("/v1/classify", **_body(payload), headers={"content-type": content_type})
                answers.append((r.status_code, r.json()))
            return answers

    return asyncio.run(run())


def test_direct_answers_are_the_fastapi_routes_answers(cls_server: Any) -> None:
    requests = [({"input": TEXTS[:3]}, "application/json"),
                ({"input": [["a fine film", "really"]]}, "application/json"),
                ({"input": "one text", "model": "tiny-cls"}, "application/json; charset=utf-8"),
                ({"input": []}, "application/json"), ({"inputs": ["x"]}, "application/json"),
                ({"input": ["x"], "model": "gpt-4"}, "application/json"), ({"input": ["x"] * 9}, "application/json"),
                ({"input": [["a", "b"], "c"]}, "application/json"), ({"input": 3}, "application/vnd.api+json"),
                ("{not json", "application/json")]
    with httpx.Client(base_url=cls_server.url, timeout=30) as client:
        direct = []
        for payload, content_type in requests:
            r = client.post("/v1/classify", **_body(payload), headers={"content-type": content_type})
            direct.append((r.status_code, r.json()))
    routed = _through_fastapi(cls_server.service, requests)
    for (status, body), (want_status, want) in zip(direct, routed, strict=True):
        assert status == want_status, (body, want)
        if status == 200:
            assert [d["label"] for d in body["data"]] == [d["label"] for d in want["data"]]
            for got, exp in zip(body["data"], want["data"], strict=True):
                assert got["probabilities"] == pytest.approx(exp["probabilities"], abs=1e-5)
            assert body["usage"] == want["usage"]
        else:
            assert body == want  # the same error shape, message and field


def test_bodies_that_are_not_json_get_a_clear_answer(cls_server: Any) -> None:
    with httpx.Client(base_url=cls_server.url, timeout=30) as client:
        plain = client.post("/v1/classify", content=b'{"input": "x"}', headers={"content-type": "text/plain"})
        bad = client.post("/v1/classify", content=b"{not json", headers={"content-type": "application/json"})
        binary = client.post("/v1/classify", content=b'{"input": "\xff\xfe"}',
                             headers={"content-type": "application/json"})
    assert plain.status_code == 400 and plain.json()["error"]["type"] == "invalid_request_error"
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]  # as OpenAI answers
    assert binary.status_code == 400 and "UTF-8" in binary.json()["error"]["message"]


def test_the_backend_alone_tokenizes_as_the_tokenizer(cls_server: Any) -> None:
    service = cls_server.service
    assert service._encoder is not None  # the served tiny BERT's tokenizer qualifies
    direct = [service.tokenize([t]) for t in TEXTS] + [service.tokenize(TEXTS), service.tokenize(TEXTS, TEXTS[::-1]),
                                                       service.tokenize(TEXTS, special=False)]
    encoder, service._encoder = service._encoder, None
    try:
        slow = [service.tokenize([t]) for t in TEXTS] + [service.tokenize(TEXTS), service.tokenize(TEXTS, TEXTS[::-1]),
                                                         service.tokenize(TEXTS, special=False)]
    finally:
        service._encoder = encoder
    assert direct == slow


def test_a_backend_that_disagrees_is_not_used(cls_server: Any) -> None:
    tokenizer = cls_server.service.runtime.tokenizer

    class Different:  # a tokenizer whose own call adds something its backend does not
        backend_tokenizer = tokenizer.backend_tokenizer

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            out = tokenizer(*args, **kwargs)
            out["input_ids"] = [[*ids, 7] for ids in out["input_ids"]]
            return out

    assert direct_encoder(tokenizer) is not None
    assert direct_encoder(Different()) is None
    assert direct_encoder(object()) is None  # a slow tokenizer has no backend
