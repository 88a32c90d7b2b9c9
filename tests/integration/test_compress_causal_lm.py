"""`llmos compress` of a causal LM end to end, on the tiny random GPT-2 (SmolLM2 runs in
benchmarks/compress_llm.py): bf16 and int4-weight children through the real CLI and
a real MLflow store; perplexity on held-out JSONL text, generation tokens/s measured through the
server's app, the perplexity gate's verdict and reason, children that reload from safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration._util import llmos

pytestmark = pytest.mark.slow

# Short measurements on one thread: a tiny model gains nothing from a second one on a busy 2-core machine.
FAST_REPORT = ["report.latency_runs=3", "report.throughput_batches=1", "report.warmup=1", "report.num_threads=1",
               "report.runtime.num_threads=1", "report.prompts=3", "report.max_new_tokens=8",
               "report.prompt_tokens=8", "report.seq_len=16"]


def _register_parent(folder: Path) -> None:
    """The tiny GPT-2 registered as lm/1 @candidate, the way `llmos train` registers one."""
    import torch

    from llmos.models import build, save_trained
    from llmos.registry import register_model
    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    torch.manual_seed(0)
    built = build("tiny-gpt2", "causal-lm")
    save_trained(built.model, built.tokenizer, folder, task="causal-lm", base="tiny-gpt2", label_names=None,
                 max_length=64)
    with start_run(TrackingSpec(system_metrics=False), run_name="parent", job={}, tags={}) as tracker:
        uri = tracker.log_model_dir(folder)
        register_model(name="lm", run_id=tracker.run_id, artifact_uri=uri, alias="candidate", tags={"recipe": "train"})


def _eval_jsonl(path: Path) -> Path:
    lines = [f"the order {i} was shipped on monday and arrived {'late' if i % 2 else 'early'} at the store"
             for i in range(12)]
    path.write_text("".join(json.dumps({"id": i, "body": t}) + "\n" for i, t in enumerate(lines)))
    return path


@pytest.mark.timeout(600)
def test_causal_lm_children_report_perplexity_tokens_per_s_and_gate(tmp_path: Path, llmos_home: Path) -> None:
    from mlflow.tracking import MlflowClient

    from llmos.models import load_trained

    _register_parent(tmp_path / "parent")
    eval_file = _eval_jsonl(tmp_path / "heldout.jsonl")
    # two children keep the test short (int8-weight is int4-weight's format and code path: tests/unit/compress)
    out = llmos("compress", "lm@candidate", "--recipe", "bf16", "--recipe", "int4-weight",
                "--eval", str(eval_file), "data.text_column=body", "--gate", "max_ppl_increase=0%",
                "--output", str(tmp_path / "work"), *FAST_REPORT, timeout_s=500).stdout
    assert "tok/s" in out and "perplexity" in out

    report = json.loads((tmp_path / "work" / "report.json").read_text())
    assert report["metric"] == "perplexity" and report["task"] == "causal-lm"
    parent = report["parent"]["measured"]
    assert parent["served"]["load"]["route"] == "/v1/completions" and parent["served"]["runtime"]["threads"] == 1
    formats = {c["recipe"]: c["measured"]["format"] for c in report["children"]}
    assert formats == {"bf16": "bf16", "int4-weight": "torchao-int4-weight"}
    for row in (report["parent"], *report["children"]):
        m = row["measured"]
        assert m["speed_from"] == "served" and m["throughput"] == m["served"]["throughput"] > 0
        # three greedy requests of up to 8 tokens; the random model never says EOS
        assert m["served"]["generated_tokens"] == 24 and len(m["served"]["answers"]) == 3
        assert 0 < m["latency_p50_ms"] <= m["latency_p95_ms"] and m["size_mb"] > 0
        assert 1 < m["metrics"]["perplexity"] < 1e6
    client = MlflowClient(f"sqlite:///{llmos_home / 'mlflow.db'}")
    sizes = {c["recipe"]: c["vs_parent"]["size_ratio"] for c in report["children"]}
    assert sizes["bf16"] < 0.6 and sizes["int4-weight"] < 1
    for child in report["children"]:
        vs, gate = child["vs_parent"], child["gate"]
        increase = (child["measured"]["metrics"]["perplexity"] / parent["metrics"]["perplexity"] - 1) * 100
        assert vs["metric_change_pct"] == pytest.approx(increase)
        assert gate["passed"] == (increase <= 0)
        if not gate["passed"]:  # the reason names the bound and the figures
            assert f"perplexity {increase:+.1f}%" in gate["reason"] and "max_ppl_increase 0%" in gate["reason"]
        version = client.get_model_version("lm", child["registered"])
        assert version.tags["parent"] == "lm/1" and version.tags["recipe"] == child["recipe"]
        assert float(version.tags["ppl_increase_pct"]) == pytest.approx(increase, abs=1e-3)
        # the child reloads from its folder (safetensors, no pickle) and answers like a causal LM
        folder = Path(child["folder"])
        assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt"))
        built = load_trained(folder)
        assert built.format == child["measured"]["format"]
        import torch

        logits = built.model(input_ids=torch.tensor([[101, 2000, 2001]])).logits
        assert logits.shape == (1, 3, 30522)

