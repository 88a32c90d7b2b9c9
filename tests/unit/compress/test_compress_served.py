"""The served figures: each model timed as `llmos serve` runs it, and the gate judging those.

The child here is the issue's case in small: an ONNX int8 export, many times faster than its
parent at one fixed length (short texts), but served on texts of 32 different lengths per request,
where ONNX Runtime cannot pack (length buckets: several calls, each still padded) while the parent
packs. The fixed-length figure (~9x on a quiet machine) is well above the served one (0.7-1.4x); the
gate asks a speed-up between the two this run measured, and the child must not get the alias.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest
from tests.unit.compress.compress_helpers import make_context

from llmos.compress import Parent
from llmos.compress._pipeline import _move_alias
from llmos.compress._recipes import get_recipe
from llmos.compress._report import measure, summarize
from llmos.spec import parse_job

_WORDS = ["good", "bad", "movie", "plot", "actor", "great", "dull", "fun", "story", "film"]


# Every request of 32 holds 32 different lengths, 2 to 126 words: length buckets cannot save an
# ONNX Runtime much padding here (several calls, each still padded), while the parent packs.
LENGTHS = [2 + 4 * i for i in range(32)]


def _skewed_eval(path: Path) -> Path:
    """64 rows: in every 32, texts of 32 different lengths."""
    rng = random.Random(0)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(64):
            writer.writerow([" ".join(rng.choice(_WORDS) for _ in range(LENGTHS[i % 32])), i % 2])
    return path


def _parent(folder: Path) -> Parent:
    import torch

    from llmos.models import build, save_trained

    torch.manual_seed(0)
    built = build("tiny-bert", "classification", label_names=["negative", "positive"])
    save_trained(built.model, built.tokenizer, folder, task="classification", base="tiny-bert",
                 label_names=["negative", "positive"], max_length=128)
    return Parent(name="s", version="1", folder=folder, info=json.loads((folder / "llmos_model.json").read_text()),
                  config=json.loads((folder / "config.json").read_text()))


def _job(eval_csv: Path, min_speedup: float) -> Any:  # a CompressJob
    return parse_job({"kind": "compress", "model": "s/1", "recipe": ["onnx-int8"], "eval": str(eval_csv),
                      "gate": {"max_metric_drop": 50, "min_speedup": min_speedup}, "alias": "fast",
                      "report": {"seq_len": 8, "num_threads": 1, "runtime": {"num_threads": 1}, "latency_runs": 5,
                                 "throughput_batches": 20, "warmup": 2, "compile": "never"}})


@pytest.mark.timeout(300)
def test_a_child_fast_at_fixed_length_but_slow_served_does_not_get_the_alias(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from llmos.compress._data import load_data

    parent, eval_csv = _parent(tmp_path / "parent"), _skewed_eval(tmp_path / "eval.csv")
    (tmp_path / "recipe").mkdir()
    ctx, params = make_context(tmp_path / "recipe", parent, "onnx-int8", eval_csv)
    child_folder = get_recipe("onnx-int8").run(ctx, params)
    # one thread each (a busy 2-core machine), short timings; seq_len 8: the fixed-length figure
    # times every model at the short texts' length, where the ONNX child shines
    job = _job(eval_csv, min_speedup=3.0)
    data = load_data(job, parent, AutoTokenizer.from_pretrained(str(parent.folder)))  # type: ignore[arg-type]
    work = tmp_path / "measure"
    work.mkdir()
    # the bound sits between the two figures this run measured: the fixed-length figure would
    # pass it, the served one must not. On a quiet machine they are far apart (~9x vs ~1x); a
    # loaded one (the parallel suite) can squeeze the short fixed-length timings towards the
    # served ones, so the pair is measured again, up to three times, until the gap shows
    for _ in range(3):
        parent_row = {"label": "parent", "measured": measure(parent.folder, job=job, data=data, work_dir=work,  # type: ignore[arg-type]
                                                             label="parent", fmt="hf-safetensors")}
        child = {"label": "onnx-int8", "slug": "onnx-int8", "registered": "2",
                 "measured": measure(child_folder, job=job, data=data, work_dir=work, label="onnx-int8",  # type: ignore[arg-type]
                                     fmt="onnx-int8")}
        fixed = summarize(job, "classification", parent_row, [child], seq_len=8)["children"][0]
        fixed_speedup, served_speedup = fixed["vs_parent_fixed_length"]["speedup"], fixed["vs_parent"]["speedup"]
        if fixed_speedup >= 1.5 * served_speedup:
            break
    assert fixed_speedup >= 1.5 * served_speedup, (fixed_speedup, served_speedup)
    bound = round((fixed_speedup * served_speedup) ** 0.5, 2)
    job = _job(eval_csv, min_speedup=bound)
    report = summarize(job, "classification", parent_row, [child], seq_len=8)  # type: ignore[arg-type]
    row = report["children"][0]

    served_parent, served_child = report["parent"]["measured"]["served"], row["measured"]["served"]
    assert served_parent["runtime"]["name"] == "torch" and served_parent["runtime"]["packing"] == "on"
    assert served_child["runtime"]["name"] == "onnx" and served_child["runtime"]["packing"].startswith("off")
    assert served_child["padding"] > 0.05 > served_parent["padding"]  # the loss shown plainly
    assert served_parent["load"] == {"batch_size": 32, "clients": 1, "texts": 64, "texts_over_limit": 0}
    assert served_child["runtime"]["threads"] == served_parent["runtime"]["threads"] == 1
    # fixed length: the child passes easily (8.8x measured quiet); served, 0.7-1.4x measured
    assert row["vs_parent_fixed_length"]["speedup"] >= bound > row["vs_parent"]["speedup"]
    assert not row["gate"]["passed"] and row["gate"]["speed_from"] == "served"
    assert row["gate"]["reasons"][0].startswith("speedup ") and f"< min_speedup {bound:g}" in row["gate"]["reasons"][0]
    assert _move_alias(job, "s", report["children"]) is None  # type: ignore[arg-type]
