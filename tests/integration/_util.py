"""Helpers for driving the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

LLMOS = [sys.executable, "-m", "llmos.cli.main"]


def write_job(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.yaml"
    path.write_text(text)
    return path


def llmos(*args: str, timeout_s: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*LLMOS, *args], capture_output=True, text=True, timeout=timeout_s,
                            env={**os.environ, "LLMOS_DEBUG": "0"})
    if check and result.returncode != 0:
        raise AssertionError(f"llmos {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def weights(run_dir: Path) -> dict:
    return load_file(str(run_dir / "model" / "model.safetensors"))
