"""Generation timed as served: the tiny GPT-2 behind the server's real app on a loopback port, in
a process of its own, greedy /v1/completions requests of fixed prompts (eval texts cut to a token
count); tokens/s, ms per token, the answers kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.unit.compress.compress_helpers import make_parent

from llmos.spec import ServeJob

_TEXTS = ["the parcel arrived two days late and the box was torn open at one corner",
          "please route this message to billing, my card was charged twice"]


def test_measure_generation_through_the_servers_app(tmp_path: Path) -> None:
    parent = make_parent(tmp_path / "lm", preset="tiny-gpt2", task="causal-lm")
    request = {"folder": str(parent.folder), "texts": _TEXTS, "prompts": 3, "prompt_tokens": 5,
               "max_new_tokens": 5, "clients": 2, "warmup": 1,
               "runtime": {**ServeJob(model="m").runtime.model_dump(), "num_threads": 1},
               "batching": ServeJob(model="m").batching.model_dump()}
    # in a process of its own, as the report runs it: the runtime sets threads and OpenMP for its process
    (tmp_path / "request.json").write_text(json.dumps(request))
    subprocess.run([sys.executable, "-m", "llmos.compress._served_generate", str(tmp_path / "request.json"),
                    str(tmp_path / "result.json")], check=True, timeout=300)
    got = json.loads((tmp_path / "result.json").read_text())
    assert got["requests"] == 3 and got["generated_tokens"] == 15  # the random model never says EOS
    assert len(got["answers"]) == 3 and all(isinstance(a, str) and a for a in got["answers"])
    assert got["throughput"] == got["generated_tokens"] / got["elapsed_s"] > 0
    assert 0 < got["latency_p50_ms"] <= got["latency_p95_ms"]
    assert got["runtime"]["name"] == "torch" and got["runtime"]["threads"] == 1
    # the prompts: the eval texts in order, cycled, each cut to its first 5 tokens (one word each here)
    first, second = "the parcel arrived two days", "please route this message to"
    assert got["prompts"] == [first, second, first]
    assert got["load"] == {"prompts": 3, "prompt_tokens": 5, "max_new_tokens": 5, "clients": 2,
                           "decoding": "greedy (temperature 0)", "route": "/v1/completions"}
