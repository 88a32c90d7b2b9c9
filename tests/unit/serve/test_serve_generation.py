"""Generation: the official openai client against a real server (streaming included), continuous
batching that matches one-at-a-time greedy decoding, stop strings, limits and deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.unit.serve.conftest import serve_job

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def lm_server(tiny_refs: dict[str, str], start_server: Any) -> Iterator[Any]:
    job = serve_job(tiny_refs["causal-lm"], batching={"max_batch_size": 4}, limits={"max_new_tokens": 40})
    with start_server(job) as running:
        yield running


@pytest.fixture(scope="module")
def openai_client(lm_server: Any) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{lm_server.url}/v1", api_key="unused", max_retries=0)


def test_openai_completions_and_chat(openai_client: Any) -> None:
    done = openai_client.completions.create(model="tiny-lm", prompt="the film was", max_tokens=6, temperature=0)
    assert done.object == "text_completion" and done.choices[0].finish_reason == "length"
    assert done.usage.completion_tokens == 6 and done.choices[0].text
    chat = openai_client.chat.completions.create(model="tiny-lm", max_tokens=5, temperature=0.7, top_p=0.9,
                                                 messages=[{"role": "user", "content": "hello"}])
    assert chat.choices[0].message.role == "assistant" and chat.choices[0].message.content
    assert chat.usage.completion_tokens == 5


def test_openai_streaming_equals_the_whole_answer(openai_client: Any) -> None:
    whole = openai_client.completions.create(model="tiny-lm", prompt="a story", max_tokens=8, temperature=0)
    stream = openai_client.completions.create(model="tiny-lm", prompt="a story", max_tokens=8, temperature=0,
                                              stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"
    chat = openai_client.chat.completions.create(model="tiny-lm", max_tokens=6, temperature=0, stream=True,
                                                 stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "hi"}])
    parts = list(chat)
    assert parts[0].choices[0].delta.role == "assistant"
    assert parts[-1].usage.completion_tokens == 6 and parts[-2].choices[0].finish_reason == "length"
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices)


def test_openai_embeddings(tiny_refs: dict[str, str], start_server: Any) -> None:
    import numpy as np
    import openai

    with start_server(serve_job(tiny_refs["embedding"])) as running:
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key="unused", max_retries=0)
        out = client.embeddings.create(model="tiny-emb", input=["a film", "a movie"])  # base64 under the hood
        assert len(out.data) == 2 and len(out.data[0].embedding) == 32
        assert np.linalg.norm(out.data[0].embedding) == pytest.approx(1.0, abs=1e-4)
        floats = client.embeddings.create(model="tiny-emb", input="a film", encoding_format="float")
        assert floats.data[0].embedding == pytest.approx(out.data[0].embedding, abs=1e-5)


def test_n_choices_per_prompt(openai_client: Any) -> None:
    """n samples per prompt, in OpenAI's order (prompt p's j-th choice at p * n + j); greedy choices
    equal the one-choice answer; a prompt's tokens count once."""
    one = [openai_client.completions.create(model="tiny-lm", prompt=p, max_tokens=5, temperature=0)
           for p in ("the film", "a story about")]
    many = openai_client.completions.create(model="tiny-lm", prompt=["the film", "a story about"], max_tokens=5,
                                            temperature=0, n=3)
    assert [c.index for c in many.choices] == list(range(6))
    assert [c.text for c in many.choices] == [one[0].choices[0].text] * 3 + [one[1].choices[0].text] * 3
    assert many.usage.prompt_tokens == one[0].usage.prompt_tokens + one[1].usage.prompt_tokens
    assert many.usage.completion_tokens == 30
    chat = openai_client.chat.completions.create(model="tiny-lm", max_tokens=4, temperature=1.0, n=2,
                                                 messages=[{"role": "user", "content": "hi"}])
    assert [c.index for c in chat.choices] == [0, 1] and all(c.message.content for c in chat.choices)
    parts = list(openai_client.chat.completions.create(model="tiny-lm", max_tokens=4, temperature=0, n=2, stream=True,
                                                        messages=[{"role": "user", "content": "hi"}]))
    by_choice: dict[int, list[Any]] = {0: [], 1: []}
    for part in parts:
        by_choice[part.choices[0].index].append(part.choices[0])
    for index, chunks in by_choice.items():
        assert chunks[0].delta.role == "assistant", index  # each choice opens with the role
        assert chunks[-1].finish_reason == "length"
    texts = ["".join(c.delta.content or "" for c in chunks) for chunks in by_choice.values()]
    assert texts[0] == texts[1] and texts[0]


def test_sse_wire_format(lm_server: Any) -> None:
    with httpx.Client(base_url=lm_server.url) as c, c.stream(
            "POST", "/v1/completions", json={"model": "tiny-lm", "prompt": "x", "max_tokens": 3, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"


def _reference(lm_server: Any, prompt: str, n: int) -> list[int]:
    """Greedy tokens from transformers' own generate() for one prompt alone."""
    import torch

    runtime = lm_server.service.runtime
    ids = runtime.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        out = runtime.model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False,
                                     pad_token_id=runtime.tokenizer.pad_token_id, eos_token_id=None)
    return out[0, len(ids):].tolist()


def test_continuous_batching_matches_one_at_a_time_greedy(lm_server: Any) -> None:
    """Requests of different lengths arriving while others decode (merged caches, left padding, rows
    leaving the batch) give exactly the tokens each prompt gets alone."""
    prompts = ["the movie", "an unexpectedly long and winding opening sentence for a story", "ok",
               "three words here", "what a cast and plot it was"]
    lengths = [12, 5, 20, 9, 14]
    tok = lm_server.service.runtime.tokenizer

    async def one(client: httpx.AsyncClient, prompt: str, n: int, delay_s: float) -> str:
        await asyncio.sleep(delay_s)
        r = await client.post("/v1/completions", json={"model": "tiny-lm", "prompt": prompt, "max_tokens": n,
                                                       "temperature": 0})
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["text"]

    async def all_at_once() -> list[str]:
        async with httpx.AsyncClient(base_url=lm_server.url, timeout=60) as client:
            return await asyncio.gather(*(one(client, p, n, 0.01 * i)
                                          for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))))

    texts = asyncio.run(all_at_once())
    for prompt, n, text in zip(prompts, lengths, texts, strict=True):
        assert text == tok.decode(_reference(lm_server, prompt, n), skip_special_tokens=True), prompt
    metrics = httpx.get(f"{lm_server.url}/metrics").text
    le1 = next(line for line in metrics.splitlines() if line.startswith('llmos_batch_size_bucket{le="1.0"}'))
    total = next(line for line in metrics.splitlines() if line.startswith("llmos_batch_size_count"))
    assert float(le1.split()[-1]) < float(total.split()[-1]), "some decode steps ran several sequences"


def test_stop_strings_end_the_text(lm_server: Any, openai_client: Any) -> None:
    base = openai_client.completions.create(model="tiny-lm", prompt="the film", max_tokens=12, temperature=0)
    text = base.choices[0].text
    words = text.split()
    assert len(words) >= 3
    stop = words[2]
    cut = openai_client.completions.create(model="tiny-lm", prompt="the film", max_tokens=12, temperature=0,
                                           stop=[stop, "zzzz"])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == text[:text.index(stop)]


@pytest.mark.parametrize(("payload", "status", "needle"), [
    ({"prompt": "x", "max_tokens": 41}, 400, "limits.max_new_tokens"),
    ({"prompt": ["x", "y"], "n": 40}, 413, "80 choices"),
    ({"prompt": "x", "n": 0}, 400, "n"),
    ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 400, "at most 4"),
    ({"prompt": "x", "temperature": 3}, 400, "temperature"),
    ({"prompt": "x", "model": "other"}, 404, "tiny-lm"),
])
def test_generation_limits(lm_server: Any, payload: dict, status: int, needle: str) -> None:
    body = {"model": "tiny-lm", **payload}
    response = httpx.post(f"{lm_server.url}/v1/completions", json=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]


def test_deadline_answers_504(tiny_refs: dict[str, str], start_server: Any) -> None:
    job = serve_job(tiny_refs["causal-lm"], limits={"timeout_s": 0.000001})
    with start_server(job) as running:
        r = httpx.post(f"{running.url}/v1/completions", json={"model": "tiny-lm", "prompt": "x", "max_tokens": 30})
        assert r.status_code == 504 and "limits.timeout_s" in r.json()["error"]["message"]
        s = httpx.post(f"{running.url}/v1/completions",
                       json={"model": "tiny-lm", "prompt": "x", "max_tokens": 30, "stream": True})
        assert s.status_code == 504
        # the abandoned sequences leave the batch: the worker goes idle again
        for _ in range(100):
            if running.service.worker.outstanding() == 0:
                break
            asyncio.run(asyncio.sleep(0.02))
        assert running.service.worker.outstanding() == 0
