"""Helpers for driving the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LLMOS = [sys.executable, "-m", "llmos.cli.main"]


def write_job(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.yaml"
    path.write_text(text)
    return path


def llmos(*args: str, timeout_s: float = 300, check: bool = True,
          home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI; `home` sets its LLMOS_HOME (module-scoped fixtures run outside a test's home)."""
    env = {**os.environ, "LLMOS_DEBUG": "0", **({"LLMOS_HOME": str(home)} if home else {})}
    result = subprocess.run([*LLMOS, *args], capture_output=True, text=True, timeout=timeout_s, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"llmos {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def weights(run_dir: Path) -> dict:
    # Imported here: processes that tests spawn import this module, and torch costs them seconds.
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model" / "model.safetensors"))


def tiny_bert_job(folder: Path, data: tuple[Path, Path], out: Path, name: str = "t") -> Path:
    """The job that the kill, SIGTERM and preemption tests interrupt: tiny-bert classification, 4
    epochs of 25 steps, a checkpoint every 10 steps. tiny-bert keeps dropout on: per-step seeding
    makes even the dropout masks resume exactly. The `undisturbed_run` fixture runs it through.
    Under the daemon it asks for both cores, so that a high-priority 2-core job must preempt it.

    One thread: a model this small gains nothing from a second one, and on a busy 2-core machine
    two OpenMP threads that wait on each other made its 100 steps take 27-38 s instead of 4-5 s.
    """
    train, test = data
    return write_job(folder, f"name: {name}\noutput: {out}\nmodel: {{name: tiny-bert, max_length: 32}}\n"
                             f"data: {{train: {train}, eval: {test}}}\n"
                             "train: {epochs: 4, batch_size: 8, lr: 0.005, precision: auto, log_every_steps: 10, "
                             "num_threads: 1}\n"
                             "checkpoint: {every_steps: 10}\ntracking: {enabled: false}\n"
                             "resources: {cpus_per_proc: 2}\n")
