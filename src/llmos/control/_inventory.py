"""This host as the scheduler sees it: its cores, memory and GPUs, after the configured overrides."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from llmos.control._config import ControlConfig
from llmos.errors import LlmosError

__all__ = ["NODE", "Gpu", "Inventory", "detect"]

NODE = "local"  # the one node of the local executor


@dataclass(frozen=True)
class Gpu:
    index: int  # as nvidia-smi and CUDA_VISIBLE_DEVICES number it
    name: str
    memory_gb: float


@dataclass(frozen=True)
class Inventory:
    cores: tuple[int, ...]  # the core ids jobs may be pinned to
    memory_gb: float
    gpus: tuple[Gpu, ...] = ()

    def node(self):  # -> llmos.scheduler.Node
        from llmos.scheduler import Node

        return Node(NODE, float(len(self.cores)), self.memory_gb, len(self.gpus))

    def describe(self) -> dict:
        return {"cpus": len(self.cores), "cores": list(self.cores), "memory_gb": round(self.memory_gb, 2),
                "gpus": [{"index": g.index, "name": g.name, "memory_gb": g.memory_gb} for g in self.gpus]}


def detect(config: ControlConfig) -> Inventory:
    """Detect this host and apply `config`'s overrides (fewer cores, reserved cores/memory, some GPUs)."""
    import psutil

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = cores[config.reserve_cpus:]  # the first cores are where the system is busiest
    if config.cpus is not None:
        if config.cpus > len(cores):
            raise LlmosError(f"cpus: {config.cpus} asked, but this process may use {len(cores)} core(s) "
                             f"(after reserving {config.reserve_cpus}).", hint=f"Use --cpus {len(cores)} or fewer.")
        cores = cores[:config.cpus]
    if not cores:
        raise LlmosError("no cores are left for jobs.", hint="Lower reserve_cpus.")
    memory_gb = config.memory_gb or psutil.virtual_memory().total / 1e9
    memory_gb -= config.reserve_memory_gb
    if memory_gb <= 0:
        raise LlmosError(f"no memory is left for jobs after reserving {config.reserve_memory_gb} GB.",
                         hint="Lower reserve_memory_gb.")
    gpus = _gpus()
    if config.gpus is not None:
        known = {g.index for g in gpus}
        missing = [i for i in config.gpus if i not in known]
        if missing:
            raise LlmosError(f"gpus: {missing} not found; this host has GPU(s) {sorted(known) or 'none'}.",
                             hint="List only GPUs that nvidia-smi shows.")
        gpus = [g for g in gpus if g.index in config.gpus]
    return Inventory(tuple(cores), memory_gb, tuple(gpus))


def _gpus() -> list[Gpu]:
    # nvidia-smi rather than torch: the daemon must not initialise CUDA (it would hold GPU memory).
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        index, name, mem_mib = (part.strip() for part in line.split(","))
        gpus.append(Gpu(int(index), name, round(float(mem_mib) / 1024, 1)))
    return gpus
