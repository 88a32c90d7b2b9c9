"""`llmos.Client`: the control plane (jobs, deployments) and the registry, with typed answers.

It wraps `llmos.control.Client` (the REST calls the CLI makes) and the registry's functions; it
adds no behaviour of its own beyond reading specs the way the CLI does."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from llmos.api._resolve import SpecLike, as_dotted, is_spec_file
from llmos.api._types import Deployment, Job, JobDetails, LogChunk

__all__ = ["Client", "deploy_spec"]


def deploy_spec(model: str | None, spec: str | Path | None, *, name: str | None = None) -> dict[str, Any]:
    """The `kind: serve` mapping a deploy sends: a reference (named after its model unless `name`
    says otherwise) or a spec file read and validated here, where its relative paths live."""
    from llmos.errors import SpecError

    if (model is None) == (spec is None):
        raise SpecError("give a MODEL reference or --spec FILE (one of them).",
                        hint="e.g. llmos deploy sentiment@production")
    if spec is not None:
        from llmos.control import load_submission, spec_project

        raw = load_submission(Path(spec)).model_dump(mode="json", by_alias=True)
        project = spec_project(Path(spec))  # which project it goes into: the submission's, not the model's
        return raw | ({"name": name} if name else {}) | ({"project": project} if project else {})
    return {"kind": "serve", "model": model,
            "name": name or str(model).split("@")[0].split("/")[0].removeprefix("models:")}


class Client:
    """A control plane: the local one (`address=None`: the daemon of `LLMOS_HOME`), or the REST
    API at `address`. The token defaults to `$LLMOS_TOKEN`, then (locally) the admin token."""

    def __init__(self, address: str | None = None, token: str | None = None, timeout_s: float = 30.0) -> None:

        from llmos.control import Client as Rest

        self._rest = Rest.local(token) if address is None else Rest.to(address, token, timeout_s=timeout_s)
        self.address = self._rest.url

    def close(self) -> None:
        self._rest.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"llmos.Client({self.address!r})"

    # ---- jobs ------------------------------------------------------------------------------------
    def submit(self, spec: SpecLike, *, priority: str = "normal", project: str | None = None,
               max_retries: int | None = None, dotted: Iterable[str] = (), **overrides: Any) -> Job | Deployment:
        """Queue a job (a spec file, a mapping or a job model); returns at once. A `kind: serve`
        spec becomes a deployment. Keyword overrides are spec keys, as in `llmos.train`."""
        from pydantic import BaseModel

        sets = as_dotted(overrides, dotted)
        options = {"priority": priority, "project": project, "max_retries": max_retries}
        if isinstance(spec, str | Path) and is_spec_file(spec):
            answer = self._rest.submit_file(spec, sets, **options)
        else:
            raw = spec.model_dump(mode="json", by_alias=True) if isinstance(spec, BaseModel) else dict(spec)
            answer = self._rest.submit(raw, sets, **options)
        return Job.from_dict(self._rest.job(answer["id"])) if "id" in answer else Deployment.from_dict(answer)

    def jobs(self, state: str | None = None, owner: str | None = None, limit: int = 50) -> list[Job]:
        """Jobs, newest first; `state` takes several, comma-separated (`RUNNING,QUEUED`)."""
        return [Job.from_dict(j) for j in self._rest.jobs(state=state, owner=owner, limit=limit)]

    def job(self, job_id: int) -> JobDetails:
        return JobDetails.from_dict(self._rest.job(job_id))

    def cancel(self, job_id: int) -> Job:
        self._rest.cancel(job_id)
        return self.job(job_id)

    def wait(self, job_id: int, timeout_s: float | None = None, poll_s: float = 0.5) -> JobDetails:
        """Block until the job has finished (SUCCEEDED, FAILED or CANCELLED)."""
        from llmos.errors import LlmosError

        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not (job := self.job(job_id)).done:
            if deadline is not None and time.monotonic() > deadline:
                raise LlmosError(f"job {job_id} is still {job.state} after {timeout_s} s.",
                                 hint=f"Wait longer, or follow it with: llmos logs {job_id} -f")
            time.sleep(poll_s)
        return job

    def logs(self, job_id: int) -> str:
        """Everything the job has printed so far: each attempt's and worker's log after its name."""
        return _joined(self.log_chunks(job_id))

    def log_chunks(self, job_id: int, follow: bool = False, poll_s: float = 0.5) -> Iterator[LogChunk]:
        """New text of each log file as it comes; with `follow`, until the job has finished."""
        finished = (lambda: self._rest.job(job_id)["state"] in _FINAL) if follow else None
        yield from _chunks(lambda: self._rest.log_files(job_id), lambda f, at: self._rest.read_log(job_id, f, at),
                           finished, poll_s)

    # ---- deployments -----------------------------------------------------------------------------
    def deploy(self, model: str | None = None, *, spec: str | Path | None = None, name: str | None = None,
               dotted: Iterable[str] = (), **overrides: Any) -> Deployment:
        """Serve `model` (`sentiment@production`) with replicas behind one address; deploying a name
        again rolls it to what the reference names now. Overrides are `kind: serve` spec keys
        (`replicas={"min": 1, "max": 3}`)."""
        answer = self._rest.deploy(deploy_spec(model, spec, name=name), as_dotted(overrides, dotted))
        return Deployment.from_dict(answer)

    def deployments(self) -> list[Deployment]:
        return [Deployment.from_dict(d) for d in self._rest.deployments()]

    def deployment(self, name: str) -> Deployment:
        return Deployment.from_dict(self._rest.deployment(name))

    def deployment_logs(self, name: str) -> str:
        """What the deployment's front router and replicas have printed, each file after its name."""
        return _joined(self.deployment_log_chunks(name))

    def deployment_log_chunks(self, name: str, follow: bool = False, poll_s: float = 0.5) -> Iterator[LogChunk]:
        """New text of the front router's and each replica's log; with `follow`, until interrupted."""
        yield from _chunks(lambda: self._rest.deployment_log_files(name),
                           lambda f, at: self._rest.read_deployment_log(name, f, at),
                           (lambda: False) if follow else None, poll_s)

    def undeploy(self, name: str) -> None:
        """Stop a deployment: its replicas finish what is in flight, then exit."""
        self._rest.undeploy(name)

    def promote(self, name: str) -> Deployment:
        """Promote the deployment's running canary now: the roll to the new version finishes."""
        return Deployment.from_dict(self._rest.canary(name, "promote"))

    def rollback(self, name: str) -> Deployment:
        """Roll the deployment's running canary back now: all traffic to the current version."""
        return Deployment.from_dict(self._rest.canary(name, "rollback"))

    # ---- the registry ------------------------------------------------------------------------------
    def models(self) -> list[Any]:
        """Registered models (`llmos.registry.ModelSummary`), from the tracking server of
        `LLMOS_TRACKING_URI` (default: the local store under `LLMOS_HOME`)."""
        from llmos.registry import list_models

        return list_models()

    def model(self, ref: str) -> Any:
        """A model's versions, aliases and lineage (`llmos.registry.ModelDetails`); `ref` is NAME,
        NAME@ALIAS or NAME/VERSION."""
        from llmos.registry import show

        return show(ref)


_FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def _chunks(files: Callable[[], list[dict]], read: Callable[[str, int], dict], finished: Callable[[], bool] | None,
            poll_s: float) -> Iterator[LogChunk]:
    """Read every log file from where the last pass stopped; again every `poll_s` until `finished()`
    (asked before reading, so the last pass sees everything) or at once without it."""
    offsets: dict[str, int] = {}
    while True:
        last = finished is None or finished()
        listing = files()
        for f in listing:
            start = offsets.get(f["name"], 0)
            if f["size"] <= start:
                continue
            chunk = read(f["name"], start)
            offsets[f["name"]] = chunk["offset"]
            if chunk["text"]:
                yield LogChunk(f["name"], chunk["text"], len(listing))
        if last:
            return
        time.sleep(poll_s)


def _joined(chunks: Iterable[LogChunk]) -> str:
    return "".join(f"==> {c.file} <==\n{c.text}" + ("" if c.text.endswith("\n") else "\n") for c in chunks)
