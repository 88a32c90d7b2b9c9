"""The other tasks through the real recipe: causal LM with LoRA, embeddings, early stopping.

One training thread: models this small gain nothing from a second one, and two OpenMP threads
that wait on each other are several times slower on a busy 2-core machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration._util import llmos, write_job

pytestmark = pytest.mark.slow


def lm_job(tmp_path: Path, name: str, lora: str) -> Path:
    corpus = tmp_path / "corpus.jsonl"
    lines = [{"text": f"order {i} shipped on monday and arrives on friday"} for i in range(64)]
    corpus.write_text("\n".join(json.dumps(x) for x in lines))
    return write_job(tmp_path / name, f"""
output: {tmp_path / name / 'run'}
model: {{name: tiny-gpt2, task: causal-lm, max_length: 32{lora}}}
data: {{train: {corpus}, label_column: null, eval_fraction: 0.25}}
train: {{epochs: 5, batch_size: 8, lr: 0.01, log_every_steps: 6, num_threads: 1}}
tracking: {{enabled: false}}
""")


def losses_of(stdout: str) -> list[float]:
    return [float(line.split("loss ")[1].split()[0]) for line in stdout.splitlines() if line.startswith("step ")]


def test_causal_lm_full_fine_tune_learns(tmp_path: Path) -> None:
    losses = losses_of(llmos("train", str(lm_job(tmp_path, "full", ""))).stdout)
    assert losses[-1] < 0.6 * losses[0], losses
    summary = json.loads((tmp_path / "full" / "run" / "summary.json").read_text())
    assert 1 < summary["metrics"]["perplexity"] < 500


def test_causal_lm_with_lora_trains_adapters_and_saves_a_merged_model(tmp_path: Path) -> None:
    job = lm_job(tmp_path, "lora", ", lora: {r: 8, alpha: 16, target_modules: [c_attn, c_fc]}")
    losses = losses_of(llmos("train", str(job)).stdout)
    # The tiny model's frozen, tied embeddings cap how far adapters alone can move the loss.
    assert losses[-1] < losses[0] - 0.05, losses
    from llmos.models import load_trained

    built = load_trained(tmp_path / "lora" / "run" / "model")
    assert not any("lora" in name for name, _ in built.model.named_parameters()), "adapters merged"


def test_embedding_task_reports_recall_and_stops_early(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    topics = ["refund", "shipping", "password", "invoice", "warranty", "coupon", "size", "battery"]
    rows = ["question,answer"] + [f"how do i get a {t} {i},the {t} answer number {i}" for t in topics for i in range(8)]
    pairs.write_text("\n".join(rows))
    job = write_job(tmp_path, f"""
output: {tmp_path / 'run'}
model: {{name: tiny-bert, task: embedding, max_length: 16}}
data: {{train: {pairs}, text_column: question, text_pair_column: answer, label_column: null}}
train: {{epochs: 20, batch_size: 8, lr: 0.003, num_threads: 1,
        early_stop: {{metric: loss, mode: min, patience: 1, min_delta: 10.0}}}}
tracking: {{enabled: false}}
""")
    llmos("train", str(job))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "recall_at_1" in summary["metrics"]
    assert summary["stopped_early"] is True  # no eval improves the loss by 10: stop after patience 1
    assert summary["steps"] < 20 * 7
