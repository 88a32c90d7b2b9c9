"""The controller's side of the front process: adopt it or start it, start it again on the same
port when it exits, publish the replica set to it, read what it reports, stop it.

The front is a process of its own (`_front.py`) so that the deployment's address keeps answering
while the controller (the control-plane daemon) is down or restarting. It is recorded by pid and
process start time, so a restarted controller adopts the very process and a recycled pid is never
mistaken for it. Whether to adopt, replace or start is the pure `front_plan`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmos.deploy._errors import DeployError
from llmos.deploy._process import ProcHandle, adopt, signals_unblocked
from llmos.deploy._reconcile import restart_delay_s
from llmos.deploy._routes import (
    REPORT_FILE,
    ROUTES_FILE,
    FrontReport,
    RouteSet,
    encode_routes,
    read_report,
    write_atomic,
)
from llmos.deploy._state import SavedFront

__all__ = ["FRONT_LOG", "FrontKeeper", "FrontPlan", "front_plan"]

FRONT_LOG = "front.log"  # in STATE_DIR/logs, beside the replicas' logs
SERVING_TIMEOUT_S = 60.0  # the front imports its HTTP stack before it serves: seconds on a busy machine
STOP_TIMEOUT_S = 10.0  # SIGTERM, then this long (its graceful shutdown takes at most 5 s), then SIGKILL


@dataclass(frozen=True)
class FrontPlan:
    action: Literal["adopt", "replace", "start"]  # replace: stop the recorded front, start one on `port`
    port: int  # where the front listens (0: a free port)


def front_plan(saved: SavedFront | None, alive: bool, front_port: int) -> FrontPlan:
    """What a starting controller does about the front an earlier one recorded: adopt it while it
    runs on the port asked for (0: any), else start one, on the recorded port unless asked another."""
    if saved is None:
        return FrontPlan("start", front_port)
    if alive:
        return FrontPlan("adopt", saved.port) if front_port in (0, saved.port) else FrontPlan("replace", front_port)
    return FrontPlan("start", front_port or saved.port)


class FrontKeeper:
    def __init__(self, name: str, state_dir: Path, host: str, port: int) -> None:
        self.name, self._dir, self.host, self.port = name, state_dir, host, port
        self.proc: ProcHandle | None = None
        self._sock: socket.socket | None = None  # bound by open(), handed to the process by launch()
        self._failures = 0  # exits in a row without a report in between
        self._retry_s = float("-inf")
        self._published = ""

    # --- starting ---------------------------------------------------------------------------------
    def open(self, saved: SavedFront | None) -> list[str]:
        """Adopt the recorded front, or bind the front address for `launch` (DeployError if taken)."""
        live = adopt(saved.pid, saved.started_at) if saved is not None else None
        plan = front_plan(saved, live is not None, self.port)
        if plan.action == "adopt" and live is not None:
            return self.adopt(live, plan.port)
        notes = []
        if plan.action == "replace" and live is not None and saved is not None:
            _stop(live)
            notes.append(f"stopped the front router on port {saved.port}: this deployment listens on {plan.port}")
        try:
            self._sock = _bind(self.host, plan.port)
        except DeployError:
            if plan.port == self.port:  # the port asked for: the user's to free
                raise
            self._sock = _bind(self.host, self.port)  # the recorded one was taken meanwhile: any is fine
        self.port = self._sock.getsockname()[1]
        return notes

    def adopt(self, live: ProcHandle, port: int) -> list[str]:
        self.proc, self.port = live, port
        return [f"kept the front router that still runs (pid {live.pid}, port {port})"]

    def adopt_saved(self, saved: SavedFront) -> list[str]:
        """Adopt the recorded front if it still runs (to stop it); never binds or starts one."""
        live = adopt(saved.pid, saved.started_at)
        return self.adopt(live, saved.port) if live is not None else []

    def launch(self, routes: RouteSet, wait: bool) -> list[str]:
        """Start the front on the socket `open` bound (nothing to do after an adoption); `wait`
        until it reports, raising DeployError with its log if it does not."""
        if self._sock is None:
            return []
        self.publish(routes)
        log_path = self._dir / "logs" / FRONT_LOG
        try:
            popen = _spawn(self._dir, self.name, self._sock, log_path)
            self.proc = ProcHandle(popen.pid, popen)
        finally:
            self._sock.close()  # the front holds it now: this process must not keep the port open
            self._sock = None
        if wait:
            self._wait_serving(log_path)
        return [f"started the front router pid {self.proc.pid} on port {self.port} (log: {log_path})"]

    def close(self) -> None:
        """Give up a bound address that was never launched (a start that failed half-way)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _wait_serving(self, log_path: Path) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + SERVING_TIMEOUT_S
        while (report := read_report(self._dir)) is None or report.pid != self.proc.pid:
            if not self.proc.alive() or time.monotonic() > deadline:
                _stop(self.proc)
                self.proc = None
                tail = log_path.read_text(errors="replace").strip().splitlines()[-10:] if log_path.exists() else []
                raise DeployError(f"the front router of deployment '{self.name}' did not start:\n" + "\n".join(tail),
                                  hint=f"Fix the cause above (the whole log: {log_path}).")
            time.sleep(0.02)

    # --- while running ----------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def keep(self, now: float, routes: RouteSet) -> list[str]:
        """Start the front again, on the same port, if it exited; backing off if it keeps exiting."""
        if self.alive():
            return []
        notes = []
        if self.proc is not None:  # it exited since the last look
            code = self.proc.exit_code()
            notes.append(f"the front router (pid {self.proc.pid}) exited{'' if code is None else f' with code {code}'}")
            self.proc = None
            self._failed(now)
        if now < self._retry_s:
            return [*notes, f"starting it again in {self._retry_s - now:.1f} s"] if notes else []
        try:
            self._sock = _bind(self.host, self.port)
            return [*notes, *self.launch(routes, wait=False)]
        except Exception as exc:  # a taken port, a failed exec: try again later; the replicas keep running
            self.close()
            self._failed(now)
            return [*notes, f"could not start the front router: {exc}; trying again in {self._retry_s - now:.1f} s"]

    def _failed(self, now: float) -> None:
        self._failures += 1
        self._retry_s = now + restart_delay_s(self._failures - 1)  # the first time: at once

    def publish(self, routes: RouteSet) -> None:
        text = encode_routes(routes)
        if text != self._published:  # most ticks change nothing: skip the write
            self._dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self._dir / ROUTES_FILE, text, durable=True)
            self._published = text

    def report(self) -> FrontReport | None:
        """What the running front reported last; None when no front runs or it has not reported yet."""
        report = read_report(self._dir) if self.alive() else None
        if report is None or self.proc is None or report.pid != self.proc.pid:
            return None
        self._failures = 0  # it serves
        return report

    def saved(self) -> SavedFront | None:
        if self.proc is None or self.proc.started_at is None:
            return None
        return SavedFront(self.proc.pid, self.proc.started_at, self.port)

    # --- stopping ---------------------------------------------------------------------------------
    def stop(self) -> list[str]:
        self.close()
        proc, self.proc = self.proc, None
        if proc is None or not proc.alive():
            return []
        _stop(proc)
        return [f"stopped the front router (pid {proc.pid})"]

    def forget(self) -> None:
        for name in (ROUTES_FILE, REPORT_FILE):
            (self._dir / name).unlink(missing_ok=True)
        self._published = ""


def _bind(host: str, port: int) -> socket.socket:
    from llmos.serve._server import tcp_listener  # stdlib only: no model stack comes with it

    try:
        return tcp_listener(host, port)
    except OSError as exc:
        raise DeployError(f"the front port {host}:{port} cannot be used: {exc.strerror}.",
                          hint="Pick another port, or stop whatever listens there (ss -ltnp).") from None


def _spawn(state_dir: Path, name: str, sock: socket.socket, log_path: Path) -> subprocess.Popen:
    # A new session, like the replicas: a Ctrl-C meant for the controller's terminal does not reach
    # it, and it outlives a controller that is killed.
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "llmos.deploy._front", str(state_dir), "--fd", str(sock.fileno())]
    with log_path.open("ab") as log, signals_unblocked():
        popen = subprocess.Popen(argv, env={**os.environ, "LLMOS_DEPLOYMENT": name}, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                 pass_fds=(sock.fileno(),))
    return popen


def _stop(proc: ProcHandle) -> None:
    proc.signal(signal.SIGTERM)
    if not proc.wait(STOP_TIMEOUT_S):
        proc.signal(signal.SIGKILL)
        proc.wait(STOP_TIMEOUT_S)
