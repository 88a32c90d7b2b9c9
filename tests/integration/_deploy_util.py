"""Helpers for deployment tests: a controller driven like the daemon drives it, and a client load."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from llmos.deploy import DeploymentController
from llmos.deploy._process import default_spawn

STANDIN = Path(__file__).with_name("_deploy_standin.py")


def standin_spawn(extra_env: dict[str, str] | None = None) -> Callable[..., subprocess.Popen]:
    """A spawn that runs the stand-in replica on the job file the controller wrote."""
    def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
        return default_spawn([sys.executable, str(STANDIN), argv[-1]], {**env, **(extra_env or {})}, log_path)
    return spawn


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def running(controller: DeploymentController, tick_s: float = 0.1) -> Iterator[DeploymentController]:
    """Start the controller and tick it from a thread, as the daemon loop does; always stop it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(tick_s):
            controller.tick(time.monotonic())

    controller.start()
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield controller
    finally:
        stop.set()
        thread.join(timeout=5)
        controller.stop(drain_timeout_s=5)


def ready_count(controller: DeploymentController) -> int:
    return controller.status().ready


class Load:
    """`clients` threads sending requests to `url` back to back, counting status codes."""

    def __init__(self, url: str, clients: int, json: dict | None = None) -> None:
        self.url, self.clients, self.json = url, clients, json
        self.codes: Counter[int | str] = Counter()
        self.replies: list[dict] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(self.url, json=self.json or {"input": "hello"})
                    code: int | str = response.status_code
                    reply = response.json() if code == 200 else None
                except httpx.HTTPError as exc:
                    code, reply = type(exc).__name__, None
                with self._lock:
                    self.codes[code] += 1
                    if reply is not None:
                        self.replies.append(reply)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def wait_for_ok(self, n: int, timeout_s: float = 15) -> None:
        """Wait until `n` more requests than now have succeeded: traffic flows, whatever the load."""
        target = self.codes[200] + n
        wait_until(lambda: self.codes[200] >= target, timeout_s, f"{n} more successful requests")

    def failures(self) -> dict[int | str, int]:
        return {code: n for code, n in self.codes.items() if code != 200}
