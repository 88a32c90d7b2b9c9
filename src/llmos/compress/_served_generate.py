"""Time one causal LM folder as `llmos serve` serves it, in a fresh process: the server's runtime,
settings, warm-up and generation worker (continuous batching, KV cache) behind its real HTTP app
on a loopback port (`llmos.serve.serve_in_thread`), answering `/v1/completions` requests.

    python -m llmos.compress._served_generate REQUEST.json RESULT.json

The prompts are the first `prompts` eval texts (cycled if there are fewer), each cut to its first
`prompt_tokens` tokens; every request asks for `max_new_tokens` tokens with temperature 0 (greedy),
`clients` in flight at once. Generation goes through HTTP because the generation routes are the
server's app itself; on loopback that adds about a millisecond to requests that take hundreds.

Figures: generated tokens/s over the whole load (`throughput`), and the p50/p95 over requests of
milliseconds per generated token (`latency_p50_ms`, `latency_p95_ms`: a request's time, prefill
included, over the tokens it got). The answers are kept, so the report can say which children
answer as the parent does.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from llmos._exit import skip_collection_at_exit

__all__ = ["measure_generation", "prompts_for"]

_WARMUP_TOKENS = 4


def prompts_for(texts: list[str], tokenizer: Any, count: int, prompt_tokens: int) -> list[str]:
    """`count` prompts: the eval texts in order (cycled), each cut to its first `prompt_tokens` tokens."""
    if not texts:
        from llmos.errors import DataError

        raise DataError("the eval data holds no texts to prompt the model with.", hint="Check eval and text_column.")
    prompts = []
    for i in range(count):
        ids = tokenizer(texts[i % len(texts)], add_special_tokens=False)["input_ids"][:prompt_tokens]
        prompts.append(tokenizer.decode(ids))
    return prompts


def measure_generation(request: dict[str, Any]) -> dict[str, Any]:
    """Serve the folder on a loopback port, drive it, return the figures and what they ran on."""
    from llmos.compress._served import _runtime_settings
    from llmos.serve import load_local, serve_in_thread
    from llmos.spec import ServeJob

    clients, max_new = int(request["clients"]), int(request["max_new_tokens"])
    job = ServeJob(model="measured", runtime=request["runtime"], batching=request["batching"],
                   limits={"max_new_tokens": max(max_new, _WARMUP_TOKENS), "timeout_s": 3600,
                           "max_queue": max(256, clients)})
    service = load_local(job, Path(request["folder"]), load=False)
    with serve_in_thread(service, ready_timeout_s=1800) as running:
        prompts = prompts_for(request["texts"], service.runtime.tokenizer, int(request["prompts"]),
                              int(request["prompt_tokens"]))
        figures = _drive(running.url, prompts, max_new, clients, int(request["warmup"]))
        runtime = _runtime_settings(service.runtime)
    return {**figures, "runtime": runtime, "batching": job.batching.model_dump(),
            "prompts": prompts, "load": {"prompts": len(prompts), "prompt_tokens": int(request["prompt_tokens"]),
                     "max_new_tokens": max_new, "clients": clients, "decoding": "greedy (temperature 0)",
                     "route": "/v1/completions"},
            "load_s": service.load_s}


def _drive(url: str, prompts: list[str], max_new: int, clients: int, warmup: int) -> dict[str, Any]:
    import httpx

    with httpx.Client(base_url=url, timeout=3600) as http:
        def complete(prompt: str, max_tokens: int) -> tuple[float, int, str]:
            started = time.perf_counter()
            reply = http.post("/v1/completions", json={"model": "measured", "prompt": prompt,
                                                       "max_tokens": max_tokens, "temperature": 0})
            elapsed_ms = (time.perf_counter() - started) * 1000
            if reply.status_code != 200:
                raise RuntimeError(f"/v1/completions answered {reply.status_code}: {reply.text[:300]}")
            body = reply.json()
            return elapsed_ms, int(body["usage"]["completion_tokens"]), body["choices"][0]["text"]

        for i in range(warmup):
            complete(prompts[i % len(prompts)], _WARMUP_TOKENS)
        results: list[tuple[float, int, str] | None] = [None] * len(prompts)
        pending = iter(range(len(prompts)))
        lock = threading.Lock()

        def client() -> None:
            while True:
                with lock:  # one shared iterator: each client sends the next prompt when answered
                    i = next(pending, None)
                if i is None:
                    return
                results[i] = complete(prompts[i], max_new)

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed_s = time.perf_counter() - started
    done = [r for r in results if r is not None]
    if len(done) != len(prompts):
        raise RuntimeError(f"{len(prompts) - len(done)} generation request(s) got no answer")
    return _figures(done, elapsed_s)


def _figures(done: list[tuple[float, int, str]], elapsed_s: float) -> dict[str, Any]:
    from llmos.compress._served import percentiles_ms

    tokens = sum(n for _, n, _ in done)
    per_token = [ms / max(n, 1) for ms, n, _ in done]
    p50, p95 = percentiles_ms(per_token)
    return {"throughput": tokens / elapsed_s, "latency_p50_ms": p50, "latency_p95_ms": p95,
            "request_p50_ms": percentiles_ms([ms for ms, _, _ in done])[0], "generated_tokens": tokens,
            "requests": len(done), "elapsed_s": elapsed_s, "answers": [text for _, _, text in done]}


def main(argv: list[str]) -> int:
    skip_collection_at_exit()  # see llmos._exit
    import warnings

    from llmos.serve import openmp_defaults

    openmp_defaults()  # before torch loads, as in the server's process
    warnings.filterwarnings("ignore")
    request = json.loads(Path(argv[0]).read_text())
    Path(argv[1]).write_text(json.dumps(measure_generation(request)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
