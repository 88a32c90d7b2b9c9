"""`llmos run pipeline.yaml`: a pipeline in this process, without a control plane.

The same decisions as under the daemon (`advance`), the same stage specs (`stage_spec`) and the same
verdicts (`read_verdict`); only the stages run here, one at a time: training as `llmos train` runs it
(worker processes), compression and the evaluate/promote steps in this process. A stage that crashes
is run again up to `max_retries` times (training resumes from its checkpoints); a verdict (a gate, a
bound) is final. A deploy stage deploys on the control plane if one is up, and waits there until
the new version's replicas are ready (or fails after its `ready_timeout_s`, with why).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmos.errors import LlmosError
from llmos.pipeline._outputs import Verdict, read_verdict
from llmos.pipeline._plan import pipeline_folder, stage_spec
from llmos.pipeline._progress import advance
from llmos.spec._pipeline import PipelineJob, Stage, fill_refs

__all__ = ["run_foreground"]


def run_foreground(job: PipelineJob, *, max_retries: int = 0, note: Callable[[str], None] = print,
                   folder: Path | None = None) -> dict[str, Any]:
    """Run every stage; returns {state, folder, stages: [{name, action, needs, state, model, reason}]}."""
    from llmos.errors import SpecError
    from llmos.pipeline._checks import stage_problems

    if problems := stage_problems(job):
        raise SpecError("the pipeline's stages cannot run as written (nothing was run):", problems=problems)
    folder = folder or pipeline_folder(job, time.strftime("%Y%m%d-%H%M%S"))
    stages = {s.name: {"name": s.name, "action": s.action, "needs": s.needs(), "state": "PENDING", "model": None,
                       "reason": "", "folder": str(folder / s.name), "tries": 0} for s in job.stages}
    while True:
        progress = advance({n: (s["state"], s["needs"]) for n, s in stages.items()})
        for name in progress.skip:
            stages[name].update(state="SKIPPED", reason=f"not started: stage {', '.join(progress.failed)} failed")
        if progress.state != "running" or not progress.submit:
            break
        for name in progress.submit:
            models = {n: s["model"] for n, s in stages.items() if s["model"]}
            note(f"[{name}] {job.stage(name).action} ...")
            verdict, tries = _run_with_retries(job, job.stage(name), models, folder / name, max_retries, note)
            stages[name].update(state="SUCCEEDED" if verdict.ok else "FAILED", model=verdict.model,
                                reason=verdict.reason, tries=tries)
            note(f"[{name}] {'succeeded' if verdict.ok else 'FAILED'}: {verdict.reason}")
    return {"name": job.name, "state": progress.state, "failed": list(progress.failed), "folder": str(folder),
            "stages": list(stages.values())}


def _run_with_retries(job: PipelineJob, stage: Stage, models: dict[str, str], folder: Path, max_retries: int,
                      note: Callable[[str], None]) -> tuple[Verdict, int]:
    for attempt in range(1, max_retries + 2):
        try:
            return _run_stage(job, stage, models, folder, note), attempt
        except LlmosError as exc:
            problems = "; ".join(f"{p}: {m}" for p, m in getattr(exc, "problems", None) or [])
            why = exc.message + (f" {problems}" if problems else "")
            if attempt > max_retries:
                return Verdict(False, None, f"attempt {attempt} failed: {why}"), attempt
            note(f"[{stage.name}] attempt {attempt} failed: {why}; retry {attempt} of {max_retries}")
    raise AssertionError("unreachable")


def _run_stage(job: PipelineJob, stage: Stage, models: dict[str, str], folder: Path,
               note: Callable[[str], None]) -> Verdict:
    from llmos.errors import RunFailed
    from llmos.spec import validate_dict

    if stage.action in ("evaluate", "promote"):
        from llmos.pipeline._steps import run_step

        run_step(stage.action, fill_refs(stage.body(), models), folder)
        return read_verdict(stage.action, folder)
    spec = stage_spec(job, stage, models, folder)
    if stage.action == "train":
        from llmos.api import run_train

        result = run_train(validate_dict(spec, f"stage {stage.name}"))
        if result.status != "succeeded":
            raise RunFailed(f"training {result.status} (exit code {result.exit_code}); its output is in "
                            f"{result.run_dir}", exit_code=result.exit_code)
    elif stage.action == "compress":
        from llmos.compress import compress

        compress(validate_dict(spec, f"stage {stage.name}"), note=lambda line: note(f"[{stage.name}] {line}"))
    else:
        return _deploy(spec, folder, stage.ready_timeout, note=lambda line: note(f"[{stage.name}] {line}"))
    return read_verdict(stage.action, folder)


def _deploy(spec: dict[str, Any], folder: Path, timeout_s: float, note: Callable[[str], None],
            poll_s: float = 1.0) -> Verdict:
    """Deploy on the control plane, then wait (as the daemon's driver does) until the replicas of the
    new version are ready, or fail with why."""
    from dataclasses import asdict

    import yaml

    from llmos.api import Client
    from llmos.pipeline._ready import deploy_readiness, expected_version

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "serve.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        with Client() as client:
            d = client.deploy(spec=folder / "serve.yaml")
            version, started, said = expected_version(asdict(d)), time.monotonic(), ""
            while True:
                try:
                    view: dict[str, Any] | None = asdict(client.deployment(d.name))
                except LlmosError as exc:
                    if "no deployment" not in exc.message:
                        raise
                    view = None
                verdict = deploy_readiness(view, version, waited_s=time.monotonic() - started, timeout_s=timeout_s)
                if verdict.state != "RUNNING":
                    break
                if verdict.reason != said:
                    note(said := verdict.reason)
                time.sleep(poll_s)
            reason = verdict.reason if verdict.state == "SUCCEEDED" or view is None else \
                f"{verdict.reason}{_tail(client, d.name, [r['id'] for r in view['replicas']])}"
    except LlmosError as exc:
        return Verdict(False, None, f"could not deploy {spec['model']}: {exc.message} (start a control plane with "
                                    f"llmos up and deploy it: llmos deploy {spec['model']}; or serve it here: "
                                    f"llmos serve {spec['model']})")
    return Verdict(verdict.state == "SUCCEEDED", version, reason)


def _tail(client: Any, name: str, running: list[str]) -> str:
    from llmos.pipeline._ready import log_tail

    texts: dict[str, str] = {}
    for chunk in client.deployment_log_chunks(name):
        texts[chunk.file] = texts.get(chunk.file, "") + chunk.text
    tail = log_tail([{"name": f, "size": len(t)} for f, t in texts.items()], lambda f, at: texts[f][at:], running)
    return f"; {tail}" if tail else ""
