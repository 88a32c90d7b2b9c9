"""This host as the scheduler sees it: its cores, memory and GPUs, after the configured overrides."""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess

from llmos._threads import usable_cores
from llmos.control import _nvml
from llmos.control._config import ControlConfig
from llmos.errors import LlmosError
from llmos.executor._hosts import NODE, Cluster, Gpu, Inventory

__all__ = ["NODE", "Cluster", "Gpu", "Inventory", "detect", "parse_nvidia_smi"]

_log = logging.getLogger(__name__)


def detect(config: ControlConfig) -> Inventory:
    """Detect this host and apply `config`'s overrides (fewer cores, reserved cores/memory, some GPUs)."""
    import psutil

    cores = usable_cores()
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
                             hint="List only indices that `nvidia-smi -L` shows (or drop `gpus` to use them all); "
                                  "the daemon's log says why a GPU was skipped.")
        gpus = [g for g in gpus if g.index in config.gpus]
    return Inventory(tuple(cores), memory_gb, tuple(gpus))


# NVML or nvidia-smi rather than torch: the daemon must not initialise CUDA (it would hold GPU memory).
_QUERY = "index,name,memory.total,mig.mode.current"
_QUERY_OLD = "index,name,memory.total"  # drivers before MIG (R450) reject the MIG field
_SMI_TIMEOUT_S = 20.0  # a wedged driver can hang nvidia-smi; the daemon starts without GPUs instead
_UNKNOWN = ("[N/A]", "[Not Supported]")  # what nvidia-smi prints for a value the GPU does not report


def parse_nvidia_smi(text: str) -> tuple[list[Gpu], list[str]]:
    """The GPUs in `nvidia-smi --query-gpu=index,name,memory.total[,mig.mode.current]
    --format=csv,noheader,nounits` output, and why each other non-blank line was skipped.

    Unknown memory ("[N/A]", as on unified-memory GPUs) is kept as None. A GPU in MIG mode is
    skipped: CUDA_VISIBLE_DEVICES=INDEX cannot give a job the whole of it.
    """
    gpus: list[Gpu] = []
    skipped: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        gpu = _parse_line(line)
        if isinstance(gpu, str):
            skipped.append(f"{line!r}: {gpu}")
        else:
            gpus.append(gpu)
    return gpus, skipped


def _parse_line(line: str) -> Gpu | str:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) not in (3, 4) or not fields[0].isdigit() or not fields[1]:
        return "not an 'index, name, memory[, MIG mode]' line"
    index, name, memory = int(fields[0]), fields[1], fields[2]
    if memory not in _UNKNOWN and not memory.replace(".", "", 1).isdigit():
        return f"GPU {index} reports memory {memory!r}"
    if len(fields) == 4 and fields[3] == "Enabled":
        return (f"GPU {index} is in MIG mode and cannot be given to a job whole; to schedule it, "
                f"disable MIG with: nvidia-smi -i {index} -mig 0")
    return Gpu(index, name, None if memory in _UNKNOWN else round(float(memory) / 1024, 1))


def _gpus() -> list[Gpu]:
    """From NVML (nvidia-ml-py); from nvidia-smi's text only where NVML cannot be loaded."""
    found = _nvml.devices(_SMI_TIMEOUT_S)
    if found is not None:
        return _from_nvml(found)
    return _gpus_from_smi()


def _from_nvml(found: list[_nvml.Device]) -> list[Gpu]:
    gpus = []
    for index, name, memory_gb, mig in found:
        if mig:  # as for nvidia-smi: CUDA_VISIBLE_DEVICES=INDEX cannot give a job the whole of it
            _log.warning("GPU %d is in MIG mode and cannot be given to a job whole; to schedule it, disable MIG "
                         "with: nvidia-smi -i %d -mig 0", index, index)
            continue
        gpus.append(Gpu(index, name, memory_gb))
    return gpus


def _gpus_from_smi() -> list[Gpu]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []  # a machine without NVIDIA's driver: no GPUs, nothing to warn about
    result = _run(exe, _QUERY)
    if result is not None and result[0] != 0 and "valid field" in result[1] + result[2]:
        result = _run(exe, _QUERY_OLD)
    if result is None:
        return []
    code, out, err = result
    gpus, skipped = parse_nvidia_smi(out)
    if code != 0:
        unread = [line.strip() for line in out.splitlines() if line.strip() and isinstance(_parse_line(line), str)]
        said = " | ".join([line.strip() for line in err.splitlines() if line.strip()] + unread)[:500]
        _log.warning("nvidia-smi exited with status %d (%s); scheduling the %d GPU(s) it listed.",
                     code, said or "no message", len(gpus))
    else:
        for why in skipped:
            _log.warning("nvidia-smi: skipped %s.", why)
    return gpus


def _run(exe: str, query: str) -> tuple[int, str, str] | None:
    """(exit status, stdout, stderr) of one query, or None (with a warning) if it did not answer."""
    argv = [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"]
    try:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                 text=True, errors="replace")
    except OSError as exc:
        _log.warning("could not run %s (%s); scheduling no GPUs.", exe, exc)
        return None
    try:
        out, err = child.communicate(timeout=_SMI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        # Not communicate() again: an nvidia-smi stuck in the driver may never die, and the daemon must start.
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1)
        _log.warning("nvidia-smi did not answer within %g s; scheduling no GPUs.", _SMI_TIMEOUT_S)
        return None
    return child.returncode, out, err
