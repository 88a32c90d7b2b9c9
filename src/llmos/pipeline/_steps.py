"""The two stages that are not jobs of another kind: evaluate a model version on named data, and
point an alias at one. Each writes `result.json` in its folder (what `read_verdict` reads): a
stage whose bounds are missed is a verdict, not a crash, so its job succeeds and is not retried."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from llmos.pipeline._outputs import RESULT_FILE, bounds_missed
from llmos.spec._pipeline import EvaluateStage, PromoteStage

__all__ = ["evaluate_model", "promote_model", "run_step"]


def run_step(action: str, body: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Run an evaluate or promote stage (references already filled in) and write its result."""
    result = evaluate_model(EvaluateStage.model_validate(body)) if action == "evaluate" else \
        promote_model(PromoteStage.model_validate(body))
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, folder / RESULT_FILE)
    return result


def evaluate_model(spec: EvaluateStage) -> dict[str, Any]:
    """The task metric of `spec.model` on `spec.data`, checked against the bounds."""
    import torch

    from llmos.data import encode, load_dataset
    from llmos.models import load_trained
    from llmos.registry import ModelRef, fetch, parse_ref, show
    from llmos.run._dist import Dist
    from llmos.run._evaluate import evaluate
    from llmos.spec import DataSpec
    from llmos.tracking._store import quiet_downloads

    ref = parse_ref(spec.model)
    version = show(ref).versions[-1].version  # pinned: an alias may move meanwhile
    with quiet_downloads():  # MLflow's progress bar would fill the job's log
        folder = fetch(ModelRef(ref.name, version=version))
    info = json.loads((folder / "llmos_model.json").read_text())
    task, labels = str(info["task"]), info.get("label_names")
    built = load_trained(folder)
    data = load_dataset(DataSpec(train=spec.data, eval=spec.data, text_column=spec.text_column,
                                 text_pair_column=spec.text_pair_column,
                                 label_column=spec.label_column if task == "classification" else None,
                                 labels=labels, limit=spec.limit), task)
    split = data.eval
    if spec.limit and len(split.texts) > spec.limit:
        from dataclasses import replace

        split = replace(split, texts=split.texts[:spec.limit],
                        pairs=None if split.pairs is None else split.pairs[:spec.limit],
                        labels=None if split.labels is None else split.labels[:spec.limit])
    enc = encode(split, built.tokenizer, max_length=int(info.get("max_length") or 128), task=task)
    dist = Dist(rank=0, local_rank=0, world_size=1, local_world_size=1, device=torch.device("cpu"))
    with torch.inference_mode():
        metrics = evaluate(built.model, enc, task=task, dist=dist, batch_size=32,
                           pad_id=built.tokenizer.pad_token_id or 0, autocast=None, num_labels=len(labels or []))
    missed = bounds_missed(metrics, spec.min, spec.max)
    model = f"{ref.name}/{version}"
    shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
    reason = (f"{model} on {Path(spec.data).name} ({len(split.texts)} rows): {shown}" if not missed else
              f"{model} missed its bounds on {Path(spec.data).name}: {'; '.join(missed)}")
    return {"passed": not missed, "model": model, "metrics": metrics, "reasons": missed, "reason": reason}


def promote_model(spec: PromoteStage) -> dict[str, Any]:
    from llmos.registry import parse_ref, set_alias, show

    ref = parse_ref(spec.model)
    version = show(ref).versions[-1].version
    before = set_alias(ref.name, str(version), spec.alias)
    moved = f"from version {before}" if before else "new alias"
    return {"passed": True, "model": f"{ref.name}/{version}",
            "reason": f"{ref.name}@{spec.alias} -> version {version} ({moved}; undo: llmos models rollback "
                      f"{ref.name} {spec.alias})"}
