"""Whether a deploy stage is done: a pure function of the deployment as the control plane shows it.

A deploy stage succeeds once the deployment serves the version it asked for: `replicas.min` replicas
of that version ready (answering their readiness probe), with no canary of it still being watched. It
fails when the roll to it failed (its replicas kept exiting while the old ones served), its canary was
rolled back, the deployment went away, its replicas exited before they were ready `MAX_START_FAILURES`
times in a row (a version that cannot load: the stage does not wait out its bound for it; the
deployment goes on retrying, with back-off, as it would for a replica that died), or it is not ready
within the stage's `ready_timeout_s`; then the reason carries the deployment's latest events and (added
by the caller) its replicas' last log lines.

    deploy_readiness(view, "sentiment/3", waited_s=12, timeout_s=600)
    -> Readiness("RUNNING", "deploying: 0/1 ready (sentiment/3; gives up after 600 s)")
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from llmos.deploy._reconcile import MAX_START_FAILURES

__all__ = ["Readiness", "deploy_readiness", "expected_version", "log_tail"]

_TAIL_BYTES = 4096  # read from the end of a replica's log: enough for its last lines


@dataclass(frozen=True)
class Readiness:
    state: str  # RUNNING (still waiting), SUCCEEDED or FAILED
    reason: str


def expected_version(view: dict[str, Any]) -> str:
    """The version a deploy just asked for, from the deployment's view right after: the canary's
    new version while one is watched, else the version it serves (rolls) to."""
    canary = view.get("canary") or {}
    if canary.get("state") == "watching":
        return str(canary["to_revision"]).split("#", 1)[0]
    return str(view["model_version"])


def deploy_readiness(view: dict[str, Any] | None, version: str, *, waited_s: float,
                     timeout_s: float) -> Readiness:
    """`view`: the deployment (`llmos deploy show NAME --json`), None once it is gone; `version`: the
    NAME/VERSION the stage deployed; `waited_s`: since the stage deployed it."""
    if view is None:
        return Readiness("FAILED", f"the deployment of {version} was removed while the stage waited for it")
    name, need = view["name"], int(view["min"])
    canary = view.get("canary") or {}
    watching = canary.get("state") == "watching" and str(canary.get("to_revision", "")).startswith(f"{version}#")
    ready = sum(r["state"] == "ready" and r["version"] == version for r in view["replicas"])
    if view["model_version"] == version and ready >= need and not watching:
        return Readiness("SUCCEEDED", f"deployed {name} ({version}) at {view['url']}: {ready}/{need} ready")
    events = "; ".join(view.get("events") or [])
    if canary.get("state") == "rolled_back" and str(canary.get("to_revision", "")).startswith(f"{version}#"):
        return Readiness("FAILED", f"the canary of {version} on {name} was rolled back: {canary.get('verdict', '')}")
    if view.get("rollout") == "failed" and view["model_version"] != version:
        return Readiness("FAILED", f"the roll of {name} to {version} failed; it still serves "
                                   f"{view['model_version']} (events: {events})")
    exited = int(view.get("start_failures") or 0)
    if view["model_version"] == version and ready == 0 and exited >= MAX_START_FAILURES:
        return Readiness("FAILED", f"{name} had 0/{need} replica(s) of {version} ready: they exited before they "
                                   f"were ready {exited} times in a row, so the stage did not wait out its "
                                   f"{timeout_s:g} s (ready_timeout_s); the deployment keeps retrying "
                                   f"(events: {events or 'none'})")
    if waited_s > timeout_s:
        return Readiness("FAILED", f"{name} had {ready}/{need} replica(s) of {version} ready after "
                                   f"{timeout_s:g} s (ready_timeout_s) (events: {events or 'none'})")
    step = f"; canary at {canary.get('percent', 0):g}% of the traffic" if watching else ""
    return Readiness("RUNNING", f"deploying: {ready}/{need} ready ({version}{step}; gives up after "
                                f"{timeout_s:g} s)")


def log_tail(files: list[dict[str, Any]], read: Callable[[str, int], str], running: Collection[str] = (),
             lines: int = 8) -> str:
    """The last `lines` lines of the newest replica log among a deployment's `files` ({name, size}),
    that of a replica which exited (not in `running`, replica ids) when there is one: why it could
    not start. `read(name, offset)` returns a file's text from `offset`. '' when there is none."""
    replicas = [f for f in files if f["name"].startswith("r") and f["name"].endswith(".log")]
    replicas = [f for f in replicas if f["name"].removesuffix(".log") not in running] or replicas
    if not replicas:
        return ""
    newest = max(replicas, key=lambda f: _replica_number(f["name"]))
    offset = max(0, int(newest.get("size", 0)) - _TAIL_BYTES)
    text = read(newest["name"], offset).splitlines()[1 if offset else 0:]  # a first line cut in two is left out
    shown = [line.strip() for line in text if line.strip()][-lines:]
    return f"last lines of {newest['name']}: " + " | ".join(shown) if shown else ""


def _replica_number(name: str) -> tuple[int, str]:
    digits = "".join(c for c in name if c.isdigit())
    return (int(digits) if digits else -1, name)
