"""OpenAI conformance of the generation routes, with the official openai client against a real
server: seed, logprobs, penalties, stop, user; parameters llmos cannot honour are a 400 naming
them; OpenAI's error shapes and codes; one bad request never fails its neighbours; the OpenAPI
document declares what the server answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.unit.serve.conftest import serve_job

pytestmark = pytest.mark.timeout(180)

CHAT = [{"role": "user", "content": "tell me about the film"}]


@pytest.fixture(scope="module")
def lm(tiny_refs: dict[str, str], start_server: Any) -> Iterator[Any]:
    job = serve_job(tiny_refs["causal-lm"], batching={"max_batch_size": 8}, limits={"max_new_tokens": 24})
    with start_server(job, api_key="sesame") as running:
        yield running


@pytest.fixture(scope="module")
def client(lm: Any) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{lm.url}/v1", api_key="sesame", max_retries=0)


def _post(lm: Any, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{lm.url}{path}", headers={"authorization": "Bearer sesame", **kwargs.pop("headers", {})},
                      timeout=60, **kwargs)


async def _together(lm: Any, bodies: list[dict[str, Any]], path: str = "/v1/completions") -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=lm.url, timeout=60, headers={"authorization": "Bearer sesame"}) as c:
        return list(await asyncio.gather(*(c.post(path, json=b) for b in bodies)))


def test_same_seed_same_answer_alone_and_in_a_batch(lm: Any, client: Any) -> None:
    ask = {"model": "tiny-lm", "prompt": "the story", "max_tokens": 12, "temperature": 1.0}
    alone = [client.completions.create(**ask, seed=7).choices[0].text for _ in range(2)]
    assert alone[0] == alone[1]
    others = [{**ask, "prompt": f"noise {i}", "seed": None} for i in range(5)]
    crowd = asyncio.run(_together(lm, [*others[:3], {**ask, "seed": 7}, *others[3:]]))
    assert all(r.status_code == 200 for r in crowd)
    assert crowd[3].json()["choices"][0]["text"] == alone[0]
    seeds = {client.completions.create(**ask, seed=s).choices[0].text for s in range(1, 6)}
    assert len(seeds) > 1, "different seeds draw differently"
    chat = [client.chat.completions.create(model="tiny-lm", messages=CHAT, max_tokens=8, seed=3).choices[0]
            .message.content for _ in range(2)]
    assert chat[0] == chat[1]


def test_chat_logprobs_and_top_logprobs(client: Any) -> None:
    out = client.chat.completions.create(model="tiny-lm", messages=CHAT, max_tokens=6, temperature=0,
                                         logprobs=True, top_logprobs=3)
    content = out.choices[0].logprobs.content
    assert len(content) == out.usage.completion_tokens == 6
    for entry in content:
        assert len(entry.top_logprobs) == 3 and entry.logprob <= 0
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob, abs=1e-5)  # greedy: the top token
        assert entry.top_logprobs[0].token == entry.token and entry.bytes == list(entry.token.encode())
    plain = client.chat.completions.create(model="tiny-lm", messages=CHAT, max_tokens=6, temperature=0)
    assert plain.choices[0].logprobs is None
    streamed = list(client.chat.completions.create(model="tiny-lm", messages=CHAT, max_tokens=6, temperature=0,
                                                   logprobs=True, top_logprobs=2, stream=True))
    tokens = [e.token for p in streamed if p.choices and p.choices[0].logprobs for e in p.choices[0].logprobs.content]
    assert tokens == [e.token for e in content]


def test_completion_logprobs(client: Any) -> None:
    out = client.completions.create(model="tiny-lm", prompt="a film", max_tokens=5, temperature=0, logprobs=2)
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 5
    assert all(len(top) <= 2 and max(top.values()) == pytest.approx(v, abs=1e-5)
               for top, v in zip(lp.top_logprobs, lp.token_logprobs, strict=True))
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)


def test_penalties_change_a_repetitive_answer(client: Any) -> None:
    def repeats(text: str) -> int:
        words = text.split()
        return len(words) - len(set(words))

    ask = {"model": "tiny-lm", "prompt": "the the the", "max_tokens": 20, "temperature": 0}
    plain = client.completions.create(**ask).choices[0].text
    assert repeats(plain) > 0, "the tiny model repeats itself greedily"
    for penalty in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0}):
        penalised = client.completions.create(**ask, **penalty).choices[0].text
        assert penalised != plain and repeats(penalised) < repeats(plain), penalty


def test_stop_and_user_are_honoured(client: Any) -> None:
    text = client.completions.create(model="tiny-lm", prompt="the film", max_tokens=12, temperature=0,
                                     user="alice").choices[0].text
    stop = text.split()[1]
    cut = client.completions.create(model="tiny-lm", prompt="the film", max_tokens=12, temperature=0, stop=stop,
                                    user="alice")
    assert cut.choices[0].text == text[:text.index(stop)] and cut.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("path", "extra", "param"), [
    ("/v1/chat/completions", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ("/v1/chat/completions", {"response_format": {"type": "json_object"}}, "response_format"),
    ("/v1/chat/completions", {"logit_bias": {"5": 10}}, "logit_bias"),
    ("/v1/completions", {"echo": True}, "echo"),
    ("/v1/completions", {"best_of": 3}, "best_of"),
    ("/v1/completions", {"suffix": "end"}, "suffix"),
    ("/v1/completions", {"frobnicate": 1}, "frobnicate"),
])
def test_parameters_we_cannot_honour_are_400_naming_them(lm: Any, path: str, extra: dict, param: str) -> None:
    body = {"model": "tiny-lm", "max_tokens": 2, **({"messages": CHAT} if "chat" in path else {"prompt": "x"}), **extra}
    r = _post(lm, path, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and param in error["message"]


def test_bad_values_are_400_bad_request_errors_in_the_openai_client(client: Any) -> None:
    import openai

    for kwargs, param in (({"temperature": 3}, "temperature"), ({"max_tokens": 10_000}, "max_tokens"),
                          ({"n": 0}, "n")):
        with pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(model="tiny-lm", messages=CHAT, **kwargs)
        assert raised.value.status_code == 400 and param in str(raised.value), (kwargs, raised.value)


def test_neutral_values_of_unhonoured_parameters_are_accepted(lm: Any) -> None:
    chat = _post(lm, "/v1/chat/completions", json={"model": "tiny-lm", "messages": CHAT, "max_tokens": 2, "tools": [],
                                                   "response_format": {"type": "text"}, "logit_bias": {},
                                                   "store": False, "parallel_tool_calls": True})
    done = _post(lm, "/v1/completions", json={"model": "tiny-lm", "prompt": "x", "max_tokens": 2, "echo": False,
                                              "best_of": 1, "suffix": None})
    assert chat.status_code == 200 and done.status_code == 200, (chat.text, done.text)


def test_models_by_id(client: Any) -> None:
    card = client.models.retrieve("tiny-lm")
    assert card.id == "tiny-lm" and card.object == "model"
    import openai

    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_error_shapes_and_codes(lm: Any, path: str) -> None:
    not_json = _post(lm, path, content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 400, not_json.text
    assert not_json.json()["error"]["type"] == "invalid_request_error" and not_json.json()["error"]["param"] is None
    method = httpx.put(f"{lm.url}{path}", headers={"authorization": "Bearer sesame"})
    assert method.status_code == 405 and method.json()["error"]["type"] == "invalid_request_error"
    text = '"\\ud800 lone"'
    body = (f'{{"model": "tiny-lm", "prompt": {text}}}' if "chat" not in path else
            f'{{"model": "tiny-lm", "messages": [{{"role": "user", "content": {text}}}]}}')
    surrogate = _post(lm, path, content=body.encode(), headers={"content-type": "application/json"})
    assert surrogate.status_code == 400, surrogate.text
    assert "surrogate" in surrogate.json()["error"]["message"]


def test_lone_surrogates_are_400_on_encoder_routes(tiny_refs: dict[str, str], start_server: Any) -> None:
    with start_server(serve_job(tiny_refs["embedding"])) as running:
        for path, body in (("/v1/embeddings", '{"model": "tiny-emb", "input": ["ok", "\\udfff"]}'),):
            r = httpx.post(f"{running.url}{path}", content=body.encode(), headers={"content-type": "application/json"})
            assert r.status_code == 400 and r.json()["error"]["param"] == "input.1", r.text
        bad = httpx.post(f"{running.url}/v1/embeddings", content=b"[1,", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_a_tiny_top_p_fails_no_one_beside_it(lm: Any) -> None:
    """top_p=1e-300 rounds to 0 in float32: it keeps the most likely token (a 200), and requests
    generating beside it give exactly what they give alone."""
    base = {"model": "tiny-lm", "max_tokens": 10, "temperature": 0}
    prompts = ["one film", "two stories about", "three", "four words in here"]
    alone = [_post(lm, "/v1/completions", json={**base, "prompt": p}).json()["choices"][0]["text"] for p in prompts]
    bad = {"model": "tiny-lm", "max_tokens": 10, "temperature": 1.0, "top_p": 1e-300, "prompt": "tiny"}
    together = asyncio.run(_together(lm, [bad, *({**base, "prompt": p} for p in prompts), bad]))
    assert [r.status_code for r in together] == [200] * 6, [r.text for r in together]
    assert [r.json()["choices"][0]["text"] for r in together[1:5]] == alone
    greedy = _post(lm, "/v1/completions", json={**bad, "temperature": 0}).json()["choices"][0]["text"]
    assert together[0].json()["choices"][0]["text"] == greedy  # only the top token survives


def test_openapi_declares_statuses_security_streams_and_limits(lm: Any) -> None:
    doc = httpx.get(f"{lm.url}/openapi.json", headers={"authorization": "Bearer sesame"}).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer",
                                                              "description": "Authorization: Bearer KEY"}
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert {"200", "400", "401", "404", "413", "429", "500", "503", "504"} <= set(chat["responses"])
    assert "422" not in chat["responses"]  # bad values answer 400, as OpenAI's do
    assert chat["security"] == [{"bearer": []}] and doc["paths"]["/healthz"]["get"]["security"] == []
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert doc["paths"]["/v1/models/{model}"]["get"]["responses"]["404"]
    props = doc["components"]["schemas"]["CompletionRequest"]["properties"]
    assert {"type": "integer", "minimum": 1, "maximum": 24} in props["max_tokens"]["anyOf"]
    array = next(b for b in props["prompt"]["anyOf"] if b.get("type") == "array")
    assert array["minItems"] == 1 and array["maxItems"] == 64
    stop = next(b for b in props["stop"]["anyOf"] if b.get("type") == "array")
    assert stop["maxItems"] == 4
    assert props["logprobs"]["anyOf"][0]["maximum"] == 5
