"""Generation timed as served: the tiny GPT-2 behind the server's real app on a loopback port,
greedy /v1/completions requests of fixed prompts; tokens/s, ms per token, the answers kept."""

from __future__ import annotations

from pathlib import Path

from tests.unit.compress.compress_helpers import make_parent
from transformers import AutoTokenizer

from llmos.compress._served_generate import measure_generation, prompts_for
from llmos.spec import ServeJob

_TEXTS = ["the parcel arrived two days late and the box was torn open at one corner",
          "please route this message to billing, my card was charged twice"]


def test_prompts_are_the_eval_texts_cut_to_a_token_count_and_cycled(tmp_path: Path) -> None:
    parent = make_parent(tmp_path / "lm", preset="tiny-gpt2", task="causal-lm")
    tok = AutoTokenizer.from_pretrained(str(parent.folder))
    prompts = prompts_for(_TEXTS, tok, 3, 5)
    assert prompts[0] == prompts[2] != prompts[1]
    assert [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts] == [5, 5, 5]
    assert prompts[0] == "the parcel arrived two days"


def test_measure_generation_through_the_servers_app(tmp_path: Path) -> None:
    parent = make_parent(tmp_path / "lm", preset="tiny-gpt2", task="causal-lm")
    request = {"folder": str(parent.folder), "texts": _TEXTS, "prompts": 3, "prompt_tokens": 6,
               "max_new_tokens": 5, "clients": 2, "warmup": 1,
               "runtime": {**ServeJob(model="m").runtime.model_dump(), "num_threads": 1},
               "batching": ServeJob(model="m").batching.model_dump()}
    got = measure_generation(request)
    assert got["requests"] == 3 and got["generated_tokens"] == 15  # the random model never says EOS
    assert len(got["answers"]) == 3 and all(isinstance(a, str) and a for a in got["answers"])
    assert got["throughput"] == got["generated_tokens"] / got["elapsed_s"] > 0
    assert 0 < got["latency_p50_ms"] <= got["latency_p95_ms"]
    assert got["runtime"]["name"] == "torch" and got["runtime"]["threads"] == 1
    assert got["load"] == {"prompts": 3, "prompt_tokens": 6, "max_new_tokens": 5, "clients": 2,
                           "decoding": "greedy (temperature 0)", "route": "/v1/completions"}
