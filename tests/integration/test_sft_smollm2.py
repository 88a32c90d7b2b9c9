"""Instruction tuning of the real SmolLM2-135M-Instruct through `llmos train`, a handful of steps each:
LoRA (tracked, registered, answered through the registry) and a full fine-tune; the eval loss on the
assistant's tokens must fall from the base model's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmos.data import bundled_dataset_path
from tests.integration._util import llmos, write_job

LORA = "{r: 8, alpha: 16, dropout: 0.0, target_modules: [q_proj, v_proj, o_proj, down_proj]}"


def _job(folder: Path, *, lora: bool, register: bool) -> Path:
    data = bundled_dataset_path("support-routing")
    return write_job(folder, f"""
name: sft
output: {folder / "run"}
model: {{name: smollm2-135m, task: causal-lm, max_length: 256{", lora: " + LORA if lora else ""}}}
data: {{train: {data / "train.jsonl"}, eval: {data / "test.jsonl"}, label_column: null, limit: 40}}
sft: {{eval_examples: 6, exact_match_examples: 6, max_new_tokens: 6, eval_before: true}}
train: {{max_steps: 3, batch_size: 1, lr: {"1.0e-3" if lora else "5.0e-5"}, warmup_ratio: 0.0, log_every_steps: 1}}
checkpoint: {{every_steps: null}}
tracking: {{enabled: {str(register).lower()}}}
""" + ("register: {name: router, alias: candidate}\n" if register else ""))


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_sft_on_smollm2_learns_the_assistant_turns(smollm2_folder: Path, tmp_path: Path, lora: bool) -> None:
    llmos("train", str(_job(tmp_path, lora=lora, register=lora)), "--fresh", timeout_s=600)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    metrics = summary["metrics"]
    assert summary["steps"] == 3
    assert metrics["loss"] < metrics["before_loss"]
    assert 0 <= metrics["exact_match"] <= 1 and "before_exact_match" in metrics
    model_dir = tmp_path / "run" / "model"
    assert (model_dir / "chat_template.jinja").is_file() and not (model_dir / "adapter_config.json").exists()
    if lora:  # merged into a plain model, registered, and it answers through the registry
        assert summary["registered"]["name"] == "router"
        from llmos.quickstart import ask, routing_prompt

        assert ask("router@candidate", routing_prompt("Where is my parcel?"), max_new_tokens=6)
