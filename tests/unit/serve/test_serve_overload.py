"""Overload, auth, readiness and draining, against real servers on free ports."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from tests.unit.serve.conftest import serve_job

from llmos.serve import Service, begin_drain, prepare, serve_in_thread

pytestmark = pytest.mark.timeout(120)


def test_a_flood_gets_429_with_retry_after_and_no_5xx(tiny_refs: dict[str, str], start_server: Any) -> None:
    job = serve_job(tiny_refs["classification"], batching={"max_batch_size": 8, "max_wait_ms": 20},
                    limits={"max_queue": 8})

    async def flood(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30,
                                     limits=httpx.Limits(max_connections=64)) as client:
            body = {"input": ["a sentence long enough to take a moment"] * 4}
            return await asyncio.gather(*(client.post("/v1/classify", json=body) for _ in range(60)))

    with start_server(job) as running:
        responses = asyncio.run(flood(running.url))
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 429} and codes.count(429) > 0 and codes.count(200) > 0
        refused = next(r for r in responses if r.status_code == 429)
        assert int(refused.headers["retry-after"]) >= 1
        assert "limits.max_queue" in refused.json()["error"]["message"]
        assert running.service.worker.outstanding() == 0
        metrics = httpx.get(f"{running.url}/metrics").text
        assert 'llmos_requests_total{route="/v1/classify",status="429"}' in metrics


def test_classify_deadline_answers_504(tiny_refs: dict[str, str], start_server: Any) -> None:
    with start_server(serve_job(tiny_refs["classification"], limits={"timeout_s": 0.000001})) as running:
        r = httpx.post(f"{running.url}/v1/classify", json={"input": ["x"]})
        assert r.status_code == 504 and "limits.timeout_s" in r.json()["error"]["message"]


def test_api_key_guards_every_route_but_health(tiny_refs: dict[str, str], start_server: Any) -> None:
    with start_server(serve_job(tiny_refs["classification"]), api_key="s3cret") as running, \
            httpx.Client(base_url=running.url) as c:
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        for method, path in (("POST", "/v1/classify"), ("GET", "/v1/models"), ("GET", "/metrics"),
                             ("GET", "/openapi.json")):
            denied = c.request(method, path, json={"input": ["x"]})
            assert denied.status_code == 401, path
            assert denied.headers["www-authenticate"] == "Bearer"
        wrong = c.post("/v1/classify", json={"input": ["x"]}, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "Authorization: Bearer" in wrong.json()["error"]["message"]
        ok = c.post("/v1/classify", json={"input": ["x"]}, headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_api_key_from_the_environment(tiny_refs: dict[str, str], start_server: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVE_KEY", "from-env")
    job = serve_job(tiny_refs["classification"], server={"api_key_env": "MY_SERVE_KEY"})
    with start_server(job) as running:
        assert httpx.post(f"{running.url}/v1/classify", json={"input": ["x"]}).status_code == 401
        assert httpx.post(f"{running.url}/v1/classify", json={"input": ["x"]},
                          headers={"authorization": "Bearer from-env"}).status_code == 200


def test_not_ready_while_loading(tiny_refs: dict[str, str]) -> None:
    job = serve_job(tiny_refs["classification"])
    service = Service(job, prepare(job))
    load = service.load
    service.load = lambda: (time.sleep(1.5), load())  # type: ignore[method-assign]
    with serve_in_thread(service, wait_ready=False) as running:
        assert httpx.get(f"{running.url}/healthz").status_code == 200
        loading = httpx.get(f"{running.url}/readyz")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        refused = httpx.post(f"{running.url}/v1/classify", json={"input": ["x"]})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        for _ in range(200):
            if httpx.get(f"{running.url}/readyz").status_code == 200:
                break
            time.sleep(0.05)
        assert httpx.post(f"{running.url}/v1/classify", json={"input": ["x"]}).status_code == 200


def test_drain_finishes_in_flight_work_refuses_new_work_then_stops(tiny_refs: dict[str, str]) -> None:
    job = serve_job(tiny_refs["causal-lm"], limits={"max_new_tokens": 400})
    service = Service(job, prepare(job))
    with serve_in_thread(service) as running, httpx.Client(base_url=running.url, timeout=60) as c:
        body = {"model": "tiny-lm", "prompt": "once upon a time", "max_tokens": 400, "temperature": 0,
                "stream": True}
        with c.stream("POST", "/v1/completions", json=body) as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith("data: {")  # generation is under way
            begin_drain(running)
            assert c.get("/readyz").json()["status"] == "draining"
            refused = c.post("/v1/completions", json={"model": "tiny-lm", "prompt": "x"})
            assert refused.status_code == 503 and "shutting down" in refused.json()["error"]["message"]
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"  # the in-flight stream ran to its end
        running.thread.join(timeout=20)
        assert not running.thread.is_alive(), "the server stopped once nothing was in flight"
