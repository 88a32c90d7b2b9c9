"""The data files a pipeline's stages read, checked before its first stage starts: a missing eval file
of the compress stage is found at submission, not after an hour of training."""

from __future__ import annotations

from pathlib import Path

from llmos.errors import LlmosError
from llmos.spec._pipeline import PipelineJob, fill_refs, refs_in

__all__ = ["stage_problems"]


def stage_problems(job: PipelineJob) -> list[tuple[str, str]]:
    """(dotted path, message) for every data file a stage names that is not there."""
    from llmos.compress._data import check_sources as compress_sources
    from llmos.data import check_sources as train_sources
    from llmos.spec import validate_dict
    from llmos.spec._pipeline import SPEC_KIND, stage_defaults

    problems: list[tuple[str, str]] = []
    for i, stage in enumerate(job.stages):
        where, body = f"stages.{i}.{stage.action}", stage.body()
        body = fill_refs(body, {s: f"{s}/1" for _, s in refs_in(body) if s})  # a stand-in version
        if stage.action == "evaluate":
            data = str(body["data"])
            if not data.startswith("hf:") and not Path(data).is_file():
                problems.append((f"{where}.data", f"file '{data}' does not exist"))
        elif stage.action in ("train", "compress"):
            spec = validate_dict({**stage_defaults(stage, job.name), **body, "kind": SPEC_KIND[stage.action]})
            if stage.action == "compress":
                problems += [(f"{where}.{p}", m) for p, m in compress_sources(spec)]  # type: ignore[arg-type]
                continue
            try:
                train_sources(spec.data)  # type: ignore[attr-defined]
            except LlmosError as exc:
                problems.append((f"{where}.data", exc.message))
    return problems
