"""A stand-in `nvidia-smi` for machines without a GPU: a script put first on PATH that answers the
`--query-gpu=...` queries the control plane makes with fixed text, as the real tool prints it
(NVML is hidden while it is installed)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["FOUR_GPUS", "FOUR_GPUS_USE", "INVENTORY_QUERY", "USE_QUERY", "Answer", "install_nvidia_smi"]

INVENTORY_QUERY = "index,name,memory.total,mig.mode.current"
USE_QUERY = "index,utilization.gpu,memory.used"
# What `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` prints on a 4 x H100 host.
FOUR_GPUS = "".join(f"{i}, NVIDIA H100 80GB HBM3, 81559, Disabled\n" for i in range(4))
FOUR_GPUS_USE = "0, 97, 61234\n1, 0, 4\n2, [N/A], [N/A]\n3, 12, 1024\n"


@dataclass(frozen=True)
class Answer:
    stdout: str
    code: int = 0
    stderr: str = ""
    sleep_s: float = 0.0


_SCRIPT = """#!{python}
import json, sys, time
answers = json.loads({answers!r})
query = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--query-gpu=")), "")
with open({calls!r}, "a") as calls:
    calls.write(" ".join(sys.argv[1:]) + "\\n")
if query not in answers:  # as the real tool answers a field its driver does not know
    print(f'Field "{{query.split(",")[-1]}}" is not a valid field to query.')
    sys.exit(2)
out, code, err, sleep_s = answers[query]
time.sleep(sleep_s)
sys.stdout.write(out)
sys.stderr.write(err)
sys.exit(code)
"""


def install_nvidia_smi(folder: Path, monkeypatch: pytest.MonkeyPatch, answers: dict[str, Answer]) -> Path:
    """Write `folder/nvidia-smi`, put `folder` first on PATH, and return the file its calls are logged to."""
    folder.mkdir(parents=True, exist_ok=True)
    calls = folder / "calls.log"
    table = {q: [a.stdout, a.code, a.stderr, a.sleep_s] for q, a in answers.items()}
    exe = folder / "nvidia-smi"
    exe.write_text(_SCRIPT.format(python=sys.executable, answers=json.dumps(table), calls=str(calls)))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    # NVML comes first when it loads: hide it, so that this stand-in is what is read even on a GPU host
    # (tests of the NVML path put their own `pynvml` in sys.modules after this).
    monkeypatch.setitem(sys.modules, "pynvml", None)
    return calls
