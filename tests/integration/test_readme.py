"""Every `llmos` command in the README, run in the README's order in one LLMOS_HOME, as a new user
would: quickstart, your own job, compress, the registry, serve and bench, the control plane and
deployments, the simulator. (tests/unit/test_cli_consistency.py parses the same commands in
milliseconds; this runs them.)

A few commands get arguments appended (for an option given twice the last value wins; dotted
overrides add to the spec) so that the whole README runs in a few minutes on 2 cores: CHEAPER
says which and why. Shell lines that are not llmos commands (set-up, the test suite) are not run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
# The 2-layer preset and a few steps instead of MiniLM-L6 for epochs: the commands, not the model, are tested.
TINY = ["model.name=tiny-bert", "model.max_length=32", "train.max_steps=4", "train.batch_size=8"]
CHEAPER = {
    "llmos quickstart": ["--model", "tiny-bert", "--max-steps", "6"],
    "llmos train job.yaml train.lr=3e-5 resources.procs=2": TINY,
    "llmos submit job.yaml --priority high": TINY,
    # a few timed calls per model, no torch.compile: the report's figures are not what is tested
    "llmos compress": ["report.latency_runs=3", "report.throughput_batches=1", "report.warmup=1",
                       "report.compile=never", "report.runtime.compile=\"off\""],
    "llmos bench serve": ["--duration", "2s", "--warmup", "0s", "--concurrency", "4"],
    "llmos up": ["--port", "0"],  # the default 8470 may belong to another daemon on this machine
    "llmos sim generate": ["--jobs", "200"],
}


def readme_commands() -> list[list[str]]:
    """The llmos commands of each bash block, in order (continued lines joined, `;` split, comments cut)."""
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S):
        commands = [part.strip() for line in block.replace("\\\n", " ").splitlines()
                    for part in line.split("#", 1)[0].split(";")]
        blocks.append([c for c in commands if c.startswith("llmos")])
    return [b for b in blocks if b]


def _command(text: str, ports: dict[str, int]) -> str:
    base, _, redirect = text.partition(" > ")
    keys = [k for k in CHEAPER if base == k or base.startswith(k + " ")]
    extra = CHEAPER[max(keys, key=len)] if keys else []
    if base.startswith("llmos deploy ") and "@" in base:
        extra = ["--port", str(ports["front"])]
    words = [w.replace("8000", str(ports["serve"])) for w in shlex.split(base)] + extra
    return shlex.join(words) + (f" > {redirect}" if redirect else "")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, server: subprocess.Popen, timeout_s: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, f"llmos serve exited {server.returncode}: {server.stderr.read()}"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"llmos serve was not ready at {url} within {timeout_s} s")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """What the README's commands expect beside them: the job's data, observed run times, examples/."""
    from llmos.data import bundled_dataset_path

    bundled = bundled_dataset_path("support-intents")
    (tmp_path / "data").mkdir()
    shutil.copy(bundled / "train.csv", tmp_path / "data" / "train.csv")
    shutil.copy(bundled / "test.csv", tmp_path / "data" / "test.csv")
    (tmp_path / "RUNTIMES.csv").write_text("runtime_s\n" + "\n".join(str(60 * (i % 97 + 1)) for i in range(300)))
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    return tmp_path


def test_every_readme_command_runs(workdir: Path, llmos_home: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "LLMOS_DEBUG": "0",
           "OMP_NUM_THREADS": "1"}
    ports = {"serve": _free_port(), "front": _free_port()}
    ran: list[str] = []
    server = None
    try:
        for block in readme_commands():
            for text in block:
                command = _command(text, ports)
                if text.startswith("llmos serve "):  # runs until stopped: the next commands call it
                    server = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=workdir, env=env, text=True,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    _wait_ready(f"http://127.0.0.1:{ports['serve']}", server)
                else:
                    done = subprocess.run(["bash", "-c", command], cwd=workdir, env=env, capture_output=True,
                                          text=True, timeout=600)
                    assert done.returncode == 0, f"{command} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
                    _check(text, done.stdout, workdir, env)
                ran.append(text)
            if server is not None:  # the serve block is over: drain and stop, as Ctrl-C would
                server.send_signal(signal.SIGTERM)
                assert server.wait(timeout=60) == 0
                server = None
    finally:
        if server is not None:
            server.kill()
        if (llmos_home / "control" / "daemon.json").exists():
            subprocess.run(["bash", "-c", "llmos down --timeout-s 60"], cwd=workdir, env=env, timeout=120)
    assert len(ran) == sum(len(b) for b in readme_commands()) >= 25


def _check(text: str, stdout: str, workdir: Path, env: dict[str, str]) -> None:
    """What a few commands must have done, beyond exiting 0."""
    from llmos import __version__

    if text == "llmos --version":
        assert stdout.strip() == __version__
    elif text.startswith("llmos spec example train"):
        assert "kind: train" in (workdir / "job.yaml").read_text()
    elif text.startswith("llmos models rollback"):
        assert "version 2 → 1" in stdout
    elif text.startswith("llmos logs 1 -f"):  # it returned: the job has ended, and it succeeded
        show = subprocess.run(["bash", "-c", "llmos jobs show 1 --json"], cwd=workdir, env=env, capture_output=True,
                              text=True, timeout=60)
        assert json.loads(show.stdout)["state"] == "SUCCEEDED", show.stdout
    elif text.startswith("llmos deploy show"):
        assert "quickstart" in stdout
