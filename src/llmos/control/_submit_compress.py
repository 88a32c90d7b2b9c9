"""A `kind: compress` job checked before it is queued: what `llmos compress` finds before any work
that can be found without the registry, so that a doomed job is refused at `llmos submit` instead
of failing (and being retried) later."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from llmos.errors import RegistryError, SpecError

if TYPE_CHECKING:
    from llmos.spec import CompressJob

__all__ = ["ready_to_queue"]


def ready_to_queue(job: CompressJob) -> CompressJob:
    """The job with `name` made explicit (null means the parent's name), or every problem at once."""
    from llmos.compress._data import check_sources
    from llmos.registry._ref import parse_ref

    problems = list(check_sources(job))
    name = job.name
    try:
        name = name or parse_ref(job.model).name
    except RegistryError as exc:
        problems.append(("model", exc.message))
    if job.output is not None:
        output = Path(job.output).expanduser()
        if output.exists() and not (output.is_dir() and not any(output.iterdir())):
            problems.append(("output", f"{output} exists and is not an empty folder; give a new one, or leave "
                                       "output out for $LLMOS_HOME/runs/NAME-ID"))
    threads, cpus = job.report.num_threads, job.resources.cpus
    if threads is not None and threads > cpus:
        problems.append(("report.num_threads", f"{threads} threads on the {cpus} core(s) of resources.cpus would "
                                               "crowd each other and skew the timings; raise resources.cpus or "
                                               "leave report.num_threads null (one thread per core)"))
    if problems:
        raise SpecError("spec cannot run under the control plane:", problems=problems)
    return job.model_copy(update={"name": name})
