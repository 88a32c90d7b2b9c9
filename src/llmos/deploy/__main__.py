"""`python -m llmos.deploy JOB.yaml [--front-port P] [--state-dir DIR] [key=value ...]`: one
deployment in the foreground, without the control plane. SIGHUP re-reads the job file and rolls
to what it names now (the alias may have moved); SIGTERM or Ctrl-C drains and stops everything.
Killed instead (SIGKILL), it leaves the front router and the replicas serving; run again with the
same state folder, it adopts them.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from llmos._exit import skip_collection_at_exit
from llmos.errors import LlmosError

TICK_S = 0.25


def main(argv: list[str]) -> int:
    skip_collection_at_exit()  # see llmos._exit
    parser = argparse.ArgumentParser(prog="python -m llmos.deploy", description=(
        "Run one deployment in the foreground, without the control plane. SIGHUP re-reads the job file "
        "and rolls to what it names now; SIGTERM or Ctrl-C drains and stops everything."))
    parser.add_argument("job", type=Path, help="a kind: serve spec (YAML or JSON)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. replicas.max=4")
    parser.add_argument("--front-port", type=int, default=8000, help="port of the front address (0: a free one)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="replica job files, logs and state (default: $LLMOS_HOME/deployments/NAME)")
    parser.add_argument("--drain-timeout-s", type=float, default=30.0, help="how long stopping waits for requests")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except LlmosError as exc:
        from llmos.cli._render import report

        return report(exc)


def _load(args: argparse.Namespace) -> Any:
    from llmos.errors import SpecError
    from llmos.spec import ServeJob, load_job

    job = load_job(args.job, args.overrides)
    if not isinstance(job, ServeJob):
        raise SpecError(f"{args.job} is a '{job.kind}' job; a deployment needs kind: serve.",  # type: ignore[attr-defined]
                        hint="Start from: llmos spec example serve")
    return job


def _run(args: argparse.Namespace) -> int:
    from llmos.deploy import DeploymentController
    from llmos.paths import home

    job = _load(args)
    state_dir = args.state_dir or home() / "deployments" / job.name
    ctrl = DeploymentController(job.name, job, state_dir=state_dir, front_port=args.front_port)
    stop, roll = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: roll.set())
    ctrl.start()
    print(f"deployment {job.name}: {ctrl.status().front_url} -> {ctrl.status().model_version}; "
          f"state in {state_dir}", flush=True)
    shown = 0
    try:
        while not stop.wait(TICK_S):
            if roll.is_set():
                roll.clear()
                try:
                    ctrl.roll(_load(args))
                except LlmosError as exc:  # a bad edit of the file must not take the deployment down
                    print(f"roll refused: {exc}", flush=True)
            ctrl.tick(time.monotonic())
            shown = _print_events(ctrl, shown)
    finally:
        print(f"stopping: draining for up to {args.drain_timeout_s:g} s", flush=True)
        ctrl.stop(args.drain_timeout_s)
    return 0


def _print_events(ctrl: Any, shown: int) -> int:
    status = ctrl.status()
    new = min(status.events_total - shown, len(status.events))
    for line in status.events[len(status.events) - new:]:
        print(line, flush=True)
    return status.events_total


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
