"""`llmos.compress(...)`: compress a registered model, as `llmos compress` does."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from llmos.api._resolve import SpecLike, as_dotted, resolve_job

__all__ = ["compress", "compress_job"]


def compress_job(target: SpecLike, dotted: list[str]) -> Any:
    """A validated `kind: compress` job from a spec (file, mapping, job) or a parent reference."""
    return resolve_job(target, "compress", dotted, ref_key="model",
                       source="the command line" if isinstance(target, str) else "the spec")


def compress(target: SpecLike, *, note: Callable[[str], None] = print, dotted: Iterable[str] = (),
             **overrides: Any) -> Any:
    """Run the recipes on a registered model, measure every child against it, register them with
    lineage and move `alias` to the best child that passes `gate`; returns a
    `llmos.compress.CompressResult` (report, report and plot files, the MLflow run).

        llmos.compress("sentiment@candidate", recipe=["int8", "bf16"], eval="dev.csv",
                       gate={"max_metric_drop": 0.5}, alias="fast")

    `target` is the parent's reference, a `kind: compress` spec file or a mapping; keyword
    overrides are the spec's keys; `note` receives the progress lines."""
    from llmos.compress import compress as run_compress

    job = compress_job(target, as_dotted(overrides, dotted))
    return run_compress(job, note=note)
