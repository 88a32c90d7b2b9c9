"""GPUs through NVIDIA's management library (NVML, the `nvidia-ml-py` bindings, `import pynvml`):
the numbers nvidia-smi prints, asked in-process instead of parsing a tool's text.

NVML numbers GPUs as nvidia-smi does (PCI bus order), the order CUDA_VISIBLE_DEVICES takes with
CUDA_DEVICE_ORDER=PCI_BUS_ID. It never initialises CUDA, so the daemon holds no GPU memory.
Every question runs in a thread with a deadline: a wedged driver can hang NVML as it hangs
nvidia-smi, and the daemon must start anyway. `None` from a function means "NVML is not there"
(no bindings, no driver library): the caller falls back to nvidia-smi, or to no GPUs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Device", "devices", "use"]

_log = logging.getLogger(__name__)
T = TypeVar("T")
Device = tuple[int, str, float | None, bool]  # index, name, memory GB (None: not reported), MIG mode on
_MIG_ENABLED = 1  # pynvml.NVML_DEVICE_MIG_ENABLE


def devices(timeout_s: float) -> list[Device] | None:
    """Each GPU: index, name, total memory in GB (1024**3 bytes, as nvidia-smi's MiB / 1024), MIG mode.
    No GPUs (with a warning) if NVML hangs."""
    return _ask(_devices, timeout_s, "the GPU inventory", hung=[])


def use(timeout_s: float) -> dict[int, tuple[float | None, float | None]] | None:
    """index -> (utilization %, memory used GB); a value the GPU does not report is None."""
    return _ask(_use, timeout_s, "GPU use", hung={})


def _devices(nvml: Any) -> list[Device]:
    out = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        memory = _maybe(nvml, lambda h=handle: nvml.nvmlDeviceGetMemoryInfo(h).total)
        mig = _maybe(nvml, lambda h=handle: nvml.nvmlDeviceGetMigMode(h)[0])  # (current, pending)
        out.append((index, name.decode() if isinstance(name, bytes) else str(name),
                    None if memory is None else round(memory / 1024**3, 1), mig == _MIG_ENABLED))
    return out


def _use(nvml: Any) -> dict[int, tuple[float | None, float | None]]:
    live = {}
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        util = _maybe(nvml, lambda h=handle: float(nvml.nvmlDeviceGetUtilizationRates(h).gpu))
        used = _maybe(nvml, lambda h=handle: nvml.nvmlDeviceGetMemoryInfo(h).used)
        live[index] = (util, None if used is None else round(used / 1024**3, 2))
    return live


def _maybe(nvml: Any, read: Callable[[], T]) -> T | None:
    """A value the GPU may not report (NVML_ERROR_NOT_SUPPORTED, as nvidia-smi's [N/A])."""
    try:
        return read()
    except nvml.NVMLError:
        return None


def _ask(question: Callable[[Any], T], timeout_s: float, what: str, hung: T) -> T | None:
    try:
        import pynvml as nvml
    except ImportError:
        return None
    answer: list[Any] = []

    def run() -> None:
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:  # no driver library (a machine without NVIDIA's driver), or no GPU
            answer.append(exc)
            return
        try:
            answer.append(question(nvml))
        except nvml.NVMLError as exc:
            answer.append(exc)
        finally:
            nvml.nvmlShutdown()

    thread = threading.Thread(target=run, name="llmos-nvml", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():  # a wedged driver: nvidia-smi would hang as well, so no fallback
        _log.warning("NVML did not answer within %g s (%s); going on without GPUs.", timeout_s, what)
        return hung
    if isinstance(answer[0], nvml.NVMLError):
        if not isinstance(answer[0], _not_there(nvml)):
            _log.warning("NVML failed reading %s (%s); going on without it.", what, answer[0])
        return None
    return answer[0]


def _not_there(nvml: Any) -> tuple[type, ...]:
    """The errors that mean "no NVIDIA driver here", which is no news on a CPU machine."""
    names = ("NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded", "NVMLError_NoPermission")
    return tuple(getattr(nvml, n) for n in names if hasattr(nvml, n))
