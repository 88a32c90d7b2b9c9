"""`python -m llmos.run JOB.json`: validate the resolved job file and run its recipe: training
(`kind: train`, one process per worker) or compression (`kind: compress`, one process)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from llmos._exit import run_main, skip_collection_at_exit
from llmos.errors import LlmosError


def main(argv: list[str]) -> int:
    skip_collection_at_exit()  # see llmos._exit
    if len(argv) != 1:
        print("usage: python -m llmos.run JOB.json", file=sys.stderr)
        return 2
    from llmos._forkserver import worker_attach

    warm = worker_attach(argv)  # torchrun's worker: its program forked warm where a server runs
    if warm is not None:
        return warm
    from llmos._threads import prepare_process

    prepare_process()  # before torch loads: libgomp reads its settings once
    from llmos.errors import SpecError
    from llmos.spec import validate_dict

    try:
        path = Path(argv[0])
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SpecError(f"cannot read the job file {path}: {exc}",
                            hint="Start jobs with `llmos train SPEC`, which writes this file.") from None
        kind = raw.get("kind", "train") if isinstance(raw, dict) else None
        # A compression is one process: its output stays in the attempt's output.log.
        _control_plane_placement(worker_logs=kind == "train")
        job = validate_dict(raw, source=str(path))
        if kind == "compress":
            from llmos.run.compress import run_compress

            return run_compress(job)  # type: ignore[arg-type]
        if kind != "train":
            raise SpecError(f"{path} is a kind: {kind} job; python -m llmos.run runs train and compress jobs.",
                            hint=f"Run it with: llmos {kind} ...")
        from llmos.run.train import train

        return train(job)  # type: ignore[arg-type]
    except LlmosError as exc:
        from llmos.cli._render import report

        return report(exc)


def _control_plane_placement(worker_logs: bool = True) -> None:
    """Under the control plane each worker keeps to its own cores and writes its own log file."""
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    cores = os.environ.get("LLMOS_WORKER_CORES", "").split(";")  # "0,1;2,3": local rank r takes group r
    if rank < len(cores) and cores[rank] and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cores[rank].split(",")})
    logs = os.environ.get("LLMOS_WORKER_LOGS")
    if logs and worker_logs:  # named by global rank: workers on several nodes share the attempt folder
        name = f"worker-{os.environ.get('RANK', rank)}.log"
        fd = os.open(os.path.join(logs, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


if __name__ == "__main__":
    run_main(lambda: main(sys.argv[1:]))  # a worker of a gang ends by os._exit (see llmos._exit)
