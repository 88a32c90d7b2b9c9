"""Helpers for compression unit tests: a tiny parent folder and a recipe context, no MLflow."""

from __future__ import annotations

import json
from pathlib import Path

from llmos.compress import Parent, RecipeContext


def make_parent(folder: Path, preset: str = "tiny-bert", task: str = "classification") -> Parent:
    import torch

    from llmos.models import build, save_trained

    torch.manual_seed(0)
    labels = ["negative", "positive"] if task == "classification" else None
    built = build(preset, task, label_names=labels)
    save_trained(built.model, built.tokenizer, folder, task=task, base=preset, label_names=labels, max_length=32)
    return Parent(name="s", version="1", folder=folder, info=json.loads((folder / "llmos_model.json").read_text()),
                  config=json.loads((folder / "config.json").read_text()))


def make_context(tmp: Path, parent: Parent, recipe: str, eval_csv: Path,
                 data: dict | None = None) -> tuple[RecipeContext, object]:
    """A context for running `recipe` on `parent`, and the typed parameters."""
    from transformers import AutoTokenizer

    from llmos.compress._data import load_data
    from llmos.spec import parse_job
    from llmos.tracking import NullTracker

    job = parse_job({"kind": "compress", "model": parent.ref, "recipe": [recipe], "eval": str(eval_csv),
                     "data": data or {}})
    data = load_data(job, parent, AutoTokenizer.from_pretrained(str(parent.folder)))  # type: ignore[arg-type]
    out, work = tmp / "child", tmp / "work"
    out.mkdir()
    work.mkdir()
    spec = job.recipe[0]  # type: ignore[attr-defined]
    ctx = RecipeContext(parent=parent, job=job, label=spec.label, out_dir=out, work_dir=work, data=data,  # type: ignore[arg-type]
                        tracker=NullTracker(), note=lambda _: None)
    return ctx, spec.typed_params()


def batch(parent: Parent, texts: list[str]) -> dict:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(parent.folder))
    enc = tok(texts, padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
