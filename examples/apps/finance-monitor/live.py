"""Live runs of the monitor: a producer feeds headlines at a fixed rate, a local webhook receives.

The model runs as its own service (`llmos serve`, `served`). Four in five headlines are appended
to the stream file, one in five is POSTed to the monitor's HTTP intake. `run` starts the monitor
as its own process (monitor.py, a client of the model service), and with `kill_at` kills it for
real (SIGKILL) at that headline and starts it again while the producer keeps going; the
producer's HTTP posts retry until the new monitor's intake answers, as any client would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from webhook import Receiver

HERE = Path(__file__).resolve().parent
HTTP_EVERY = 5  # every 5th headline comes over HTTP
READY_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(ref: str, threads: int, folder: Path):
    """`llmos serve REF` as a child process; its URL once /readyz answers 200."""
    port = free_port()
    llmos = shutil.which("llmos", path=str(Path(sys.executable).parent)) or shutil.which("llmos") or "llmos"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "serve.log").open("ab") as log:
        proc = subprocess.Popen([llmos, "serve", ref, "--port", str(port), "--num-threads", str(threads)],
                                stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llmos serve {ref} did not get ready; see {folder / 'serve.log'}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()  # SIGTERM: the server drains and exits
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


class Monitor:
    """monitor.py as a child process with a fixed intake port (so a restarted one answers at the same URL)."""

    def __init__(self, folder: Path, model_url: str, webhook: str) -> None:
        self.folder, self.port = folder, free_port()
        self.argv = [sys.executable, str(HERE / "monitor.py"), "--stream", str(folder / "stream.jsonl"),
                     "--state", str(folder / "state"), "--model-url", model_url, "--webhook", webhook,
                     "--port", str(self.port)]
        self.intake = f"http://127.0.0.1:{self.port}/headlines"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        ready = self.folder / "state" / "ready.json"
        ready.unlink(missing_ok=True)
        with (self.folder / "monitor.log").open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=log, cwd=HERE)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the monitor did not start; see {self.folder / 'monitor.log'}")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def state(self) -> dict:
        return json.loads((self.folder / "state" / "state.json").read_text(encoding="utf-8"))


def _post(client: httpx.Client, url: str, row: dict) -> None:
    while True:
        try:
            client.post(url, json={k: row[k] for k in ("id", "company", "text")}, timeout=10).raise_for_status()
            return
        except httpx.TransportError:
            time.sleep(0.05)  # the monitor is restarting: try again


def feed(rows: list[dict], stream: Path, intake: str, rate_per_s: float, hook=None) -> float:
    """Send every row at rate_per_s; `hook(i)` runs before row i. The seconds it took."""
    start = time.monotonic()
    with httpx.Client() as client:
        for i, row in enumerate(rows):
            if hook:
                hook(i)
            pause = start + i / rate_per_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if i % HTTP_EVERY == HTTP_EVERY - 1:
                _post(client, intake, row)
            else:
                line = json.dumps({k: row[k] for k in ("id", "company", "text")} | {"sent_at": time.time()})
                fd = os.open(stream, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, (line + "\n").encode("utf-8"))  # one write: a reader never sees half a line
                finally:
                    os.close(fd)
    return time.monotonic() - start


def run(folder: Path, rows: list[dict], model_url: str, *, rate_per_s: float,
        kill_at: int | None = None, note=print) -> dict:
    """Feed rows through a live monitor; what the webhook got, and (with kill_at) what the kill left."""
    folder.mkdir(parents=True, exist_ok=True)
    stream = folder / "stream.jsonl"
    receiver = Receiver()
    monitor = Monitor(folder, model_url, receiver.url)
    killed: dict = {}
    restarter: list[threading.Thread] = []

    def hook(i: int) -> None:
        if i != kill_at:
            return
        monitor.kill()
        state = monitor.state()
        killed.update(at_headline=i, committed_offset=state["offset"], file_bytes=stream.stat().st_size,
                      labelled=state["headlines"], alerts_received=len(receiver.received),
                      outbox=len(state["outbox"]))
        note(f"  killed the monitor (SIGKILL) at headline {i}: {state['headlines']} labelled, "
             f"{killed['file_bytes'] - state['offset']} bytes not yet read; starting it again")
        down = time.monotonic()

        def restart() -> None:
            monitor.start()
            # headlines that came while no monitor was running (the producer never stopped)
            killed.update(down_s=round(time.monotonic() - down, 2),
                          bytes_arrived_while_down=stream.stat().st_size - killed["file_bytes"])

        restarter.append(threading.Thread(target=restart))
        restarter[0].start()

    try:
        monitor.start()
        note(f"  monitor up (intake {monitor.intake}); feeding {len(rows)} headlines at {rate_per_s:g}/s")
        took = feed(rows, stream, monitor.intake, rate_per_s, hook)
        for t in restarter:
            t.join()
        deadline = time.monotonic() + 600
        while True:  # until the monitor has read the whole file and sent every alert
            state = monitor.state() if (folder / "state" / "state.json").exists() else {"offset": -1}
            if state["offset"] == stream.stat().st_size and not state["outbox"]:
                break
            if time.monotonic() > deadline or monitor.proc.poll() is not None:
                raise RuntimeError(f"the monitor stopped short; see {folder / 'monitor.log'}")
            time.sleep(0.05)
    finally:
        monitor.stop()
        receiver.stop()
    return {"feed_s": took, "received": list(receiver.received), "killed": killed or None,
            "state": folder / "state"}
