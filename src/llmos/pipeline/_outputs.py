"""What a finished stage yielded, read from what its job wrote: the model version, or why it failed.

A train job's `summary.json` names the version it registered; a compress job's `report.json` has
the gate's decision per child (the stage yields the passing child with the highest throughput, as
the compress job's alias does); evaluate and promote steps write `result.json`. The verdicts are
pure functions of those documents, so tests call them with literals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RESULT_FILE", "Verdict", "bounds_missed", "compress_verdict", "read_verdict", "train_verdict"]

RESULT_FILE = "result.json"  # what an evaluate or promote step writes in its folder


@dataclass(frozen=True)
class Verdict:
    ok: bool
    model: str | None  # NAME/VERSION the stage yielded
    reason: str


def train_verdict(summary: dict[str, Any]) -> Verdict:
    reg = summary.get("registered")
    if not reg:
        return Verdict(False, None, "the run finished but registered no model; give the train stage a register "
                                    "section")
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted((summary.get("metrics") or {}).items()))
    return Verdict(True, f"{reg['name']}/{reg['version']}", f"registered {reg['name']}/{reg['version']}"
                   + (f" ({metrics})" if metrics else ""))


def compress_verdict(report: dict[str, Any]) -> Verdict:
    """The passing child with the highest throughput; when none passed, every bound each child missed."""
    children = report.get("children") or []
    name = report.get("registered_name")
    passing = [c for c in children if c["gate"]["passed"] and c.get("registered")]
    if passing:
        best = max(passing, key=lambda c: c["measured"]["throughput"])
        return Verdict(True, f"{name}/{best['registered']}",
                       f"{best['label']} passed the gate: {name}/{best['registered']}")
    missed = "; ".join(f"{c['label']}: {'; '.join(c['gate']['reasons'])}" for c in children)
    return Verdict(False, None, f"gate failed for every child, so nothing is promoted ({missed})")


def bounds_missed(metrics: dict[str, float], low: dict[str, float], high: dict[str, float]) -> list[str]:
    """One line per bound an evaluation missed, with the figure: 'accuracy 0.7100 < min 0.8'."""
    missed = []
    for bounds, below in ((low, True), (high, False)):
        for metric, bound in bounds.items():
            if metric not in metrics:
                missed.append(f"no metric '{metric}' (the evaluation reports: {', '.join(sorted(metrics))})")
            elif (metrics[metric] < bound) if below else (metrics[metric] > bound):
                missed.append(f"{metric} {metrics[metric]:.4f} {'<' if below else '>'} {'min' if below else 'max'} "
                              f"{bound:g}")
    return missed


def read_verdict(action: str, folder: Path) -> Verdict:
    """The verdict of a stage whose job succeeded, from the files it wrote in `folder`."""
    name = {"train": "summary.json", "compress": "report.json"}.get(action, RESULT_FILE)
    try:
        data = json.loads((folder / name).read_text())
    except (OSError, ValueError) as exc:
        return Verdict(False, None, f"its job succeeded but {folder / name} is unreadable ({exc})")
    if action == "train":
        return train_verdict(data)
    if action == "compress":
        return compress_verdict(data)
    return Verdict(bool(data["passed"]), data.get("model"), str(data["reason"]))
