"""Every route of classification and embedding servers, over real HTTP on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.unit.serve.conftest import serve_job

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def cls_server(tiny_refs: dict[str, str], start_server: Any) -> Iterator[Any]:
    job = serve_job(tiny_refs["classification"], limits={"max_inputs": 8, "max_input_tokens": 40,
                                                         "max_body_bytes": 4000})
    with start_server(job) as running:
        yield running


@pytest.fixture(scope="module")
def client(cls_server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cls_server.url, timeout=30) as c:
        yield c


def test_classify_texts_and_pairs(client: httpx.Client) -> None:
    body = client.post("/v1/classify", json={"input": ["a fine film", "dull"]}).json()
    assert body["model"] == "tiny-cls" and [d["index"] for d in body["data"]] == [0, 1]
    first = body["data"][0]
    assert set(first["probabilities"]) == {"negative", "positive"}
    assert first["label"] == max(first["probabilities"], key=first["probabilities"].get)
    assert first["score"] == pytest.approx(max(first["probabilities"].values()))
    assert sum(first["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["usage"]["prompt_tokens"] > 0
    one = client.post("/v1/classify", json={"input": "a fine film", "model": "tiny-cls"}).json()
    assert one["data"][0]["probabilities"] == pytest.approx(first["probabilities"], abs=1e-5)
    pair = client.post("/v1/classify", json={"input": [["a fine film", "really"]]})
    assert pair.status_code == 200 and len(pair.json()["data"]) == 1


def test_batched_results_match_single_requests(client: httpx.Client) -> None:
    texts = ["short", "a somewhat longer sentence about a movie", "mid length text"]
    together = client.post("/v1/classify", json={"input": texts}).json()["data"]
    for text, row in zip(texts, together, strict=True):
        alone = client.post("/v1/classify", json={"input": [text]}).json()["data"][0]
        assert alone["probabilities"] == pytest.approx(row["probabilities"], abs=1e-4)


@pytest.mark.parametrize(("payload", "status", "needle"), [
    ({"input": ["x"] * 9}, 413, "limits.max_inputs"),
    ({"input": ["word " * 60]}, 400, "limits.max_input_tokens"),
    ({"input": []}, 400, "input is empty"),
    ({"input": ["x"], "temperature": 1}, 400, "unrecognized request argument supplied: temperature"),
    ({"inputs": ["x"]}, 400, "inputs"),
    ({"input": ["x"], "model": "gpt-4"}, 404, "this server serves 'tiny-cls'"),
])
def test_bad_requests_name_the_limit_or_field(client: httpx.Client, payload: dict, status: int, needle: str) -> None:
    response = client.post("/v1/classify", json=payload)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]


def test_body_over_the_limit_is_413_before_parsing(client: httpx.Client) -> None:
    response = client.post("/v1/classify", content=b'{"input": ["' + b"a" * 5000 + b'"]}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and "limits.max_body_bytes" in response.json()["error"]["message"]
    chunked = client.post("/v1/classify", content=iter([b'{"input": ["', b"a" * 5000, b'"]}']),
                          headers={"content-type": "application/json"})  # no Content-Length: counted as read
    assert chunked.status_code == 413


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post("/v1/classify", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_health_models_and_openapi_match_the_task(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").status_code == 200
    card = client.get("/v1/models").json()["data"][0]
    assert card["id"] == "tiny-cls" and card["task"] == "classification" and card["version"].isdigit()
    paths = set(client.get("/openapi.json").json()["paths"])
    assert paths == {"/healthz", "/readyz", "/v1/models", "/v1/models/{model}", "/metrics", "/v1/classify"}
    assert client.post("/v1/embeddings", json={"input": "x", "model": "tiny-cls"}).status_code == 404


def test_openapi_request_schema_is_what_the_route_accepts(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    ref = doc["paths"]["/v1/classify"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == {"input", "model"} and schema["required"] == ["input"]
    assert schema.get("additionalProperties") is False


def test_metrics_names(client: httpx.Client) -> None:
    client.post("/v1/classify", json={"input": ["x", "y"]})
    text = client.get("/metrics").text
    for name in ("llmos_requests_total{route=\"/v1/classify\",status=\"200\"}", "llmos_request_latency_seconds_bucket",
                 "llmos_batch_size_bucket", "llmos_queue_depth", "llmos_inflight_requests",
                 "llmos_tokens_total{kind=\"prompt\"}"):
        assert name in text, name


@pytest.fixture(scope="module")
def emb_server(tiny_refs: dict[str, str], start_server: Any) -> Iterator[Any]:
    with start_server(serve_job(tiny_refs["embedding"])) as running:
        yield running


def test_embeddings_float_and_base64(emb_server: Any) -> None:
    import base64

    import numpy as np

    with httpx.Client(base_url=emb_server.url) as c:
        body = c.post("/v1/embeddings", json={"input": ["a film", "a movie"], "model": "tiny-emb"}).json()
        assert body["object"] == "list" and len(body["data"]) == 2
        vector = np.array(body["data"][0]["embedding"])
        assert vector.shape == (32,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
        packed = c.post("/v1/embeddings", json={"input": "a film", "model": "tiny-emb",
                                                "encoding_format": "base64"}).json()
        decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
        assert decoded == pytest.approx(vector, abs=1e-5)
        bad = c.post("/v1/embeddings", json={"input": "x", "model": "tiny-emb", "dimensions": 8})
        assert bad.status_code == 400 and "32" in bad.json()["error"]["message"]
        assert c.post("/v1/embeddings", json={"input": "x"}).status_code == 400  # model is required
