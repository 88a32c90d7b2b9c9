"""Shared bits of the benchmark scripts: where the team's datasets are, machine description."""

from __future__ import annotations

import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LLMOS_SHARED", REPO.parent / "shared"))
OUT = REPO / "benchmarks" / "out"


def machine() -> str:
    """The host in one line, with the vector units the figures depend on (hosts differ: AMX,
    AVX-512 with BF16, or AVX2 only)."""
    import torch

    return (f"{platform.machine()} {os.cpu_count()} cores ({cpu_kind()}), torch {torch.__version__}, "
            f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")


def cpu_kind() -> str:
    """'AMX', 'AVX-512 + BF16', 'AVX-512' or 'AVX2 only' (from /proc/cpuinfo; 'unknown' elsewhere)."""
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return "unknown"
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512f" in flags:
        return "AVX-512 + BF16" if "avx512_bf16" in flags else "AVX-512"
    return "AVX2 only" if "avx2" in flags else "no AVX2"


def sst2(split: str) -> Path:
    path = SHARED / "datasets" / "sst2" / f"{split}.tsv"
    if not path.is_file():
        raise SystemExit(f"{path} not found: set LLMOS_SHARED to the folder holding datasets/sst2")
    return path
