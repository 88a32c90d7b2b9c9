"""Shared bits of the benchmark scripts: where the team's datasets are, machine description."""

from __future__ import annotations

import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LLMOS_SHARED", REPO.parent / "shared"))
OUT = REPO / "benchmarks" / "out"


def machine() -> str:
    import torch

    return (f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")


def sst2(split: str) -> Path:
    path = SHARED / "datasets" / "sst2" / f"{split}.tsv"
    if not path.is_file():
        raise SystemExit(f"{path} not found: set LLMOS_SHARED to the folder holding datasets/sst2")
    return path
