"""GPUs through NVML (nvidia-ml-py): the inventory and `llmos top` read it when it loads, fall back
to nvidia-smi's text where it cannot, and never hang the daemon. A stand-in `pynvml` module plays
the driver on machines without a GPU (the nvidia-smi path has its stand-in in _fake_gpu.py)."""

from __future__ import annotations

import logging
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.unit.control._fake_gpu import FOUR_GPUS, INVENTORY_QUERY, Answer, install_nvidia_smi

from llmos.control import ControlConfig, _nvml
from llmos.control._inventory import Gpu, Inventory, detect
from llmos.control._top import _gpu_use


class NVMLError(Exception):
    pass


class NotSupported(NVMLError):
    pass


class LibraryNotFound(NVMLError):
    pass


def fake_nvml(gpus: list[dict], init: BaseException | None = None, init_sleep_s: float = 0.0) -> types.ModuleType:
    """`pynvml` answering for `gpus`: dicts of name, total/used bytes, util %, mig (None: not supported)."""
    m = types.ModuleType("pynvml")
    m.NVMLError, m.NVMLError_NotSupported, m.NVMLError_LibraryNotFound = NVMLError, NotSupported, LibraryNotFound
    m.calls = []

    def init_() -> None:
        m.calls.append("init")
        time.sleep(init_sleep_s)
        if init is not None:
            raise init

    def value(h: int, key: str):
        v = gpus[h].get(key)
        if v is None:
            raise NotSupported("Not Supported")
        return v

    m.nvmlInit, m.nvmlShutdown = init_, lambda: m.calls.append("shutdown")
    m.nvmlDeviceGetCount = lambda: len(gpus)
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetName = lambda h: gpus[h]["name"]
    m.nvmlDeviceGetMemoryInfo = lambda h: SimpleNamespace(total=value(h, "total"), used=value(h, "used"))
    m.nvmlDeviceGetMigMode = lambda h: (value(h, "mig"), value(h, "mig"))
    m.nvmlDeviceGetUtilizationRates = lambda h: SimpleNamespace(gpu=value(h, "util"))
    return m


H100 = {"name": "NVIDIA H100 80GB HBM3", "total": 81559 * 2**20, "used": 61234 * 2**20, "util": 97, "mig": 0}
FOUR = [H100, {**H100, "mig": 1}, {**H100, "total": None, "used": None, "util": None, "mig": None}, H100]


@pytest.fixture
def no_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An nvidia-smi that fails if asked: the NVML path must not need it."""
    return install_nvidia_smi(tmp_path / "bin", monkeypatch, {})


def test_the_inventory_comes_from_nvml_as_nvidia_smi_would_print_it(monkeypatch, no_smi, caplog) -> None:
    nvml = fake_nvml(FOUR)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with caplog.at_level(logging.WARNING):
        inv = detect(ControlConfig())
    # GPU 1 is in MIG mode (skipped, with the fix); GPU 2 reports no memory (kept, unknown)
    assert inv.gpus == (Gpu(0, "NVIDIA H100 80GB HBM3", 79.6), Gpu(2, "NVIDIA H100 80GB HBM3", None),
                        Gpu(3, "NVIDIA H100 80GB HBM3", 79.6))
    assert "nvidia-smi -i 1 -mig 0" in caplog.text
    assert nvml.calls == ["init", "shutdown"] and not no_smi.exists()  # nvidia-smi was never run


def test_top_reads_use_from_nvml(monkeypatch, no_smi) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(FOUR))
    inv = Inventory(cores=(0,), memory_gb=8.0, gpus=(Gpu(0, "H100", 79.6), Gpu(2, "H100", None)))
    assert [(g["index"], g["util_percent"], g["memory_used_gb"]) for g in _gpu_use(inv)] == [
        (0, 97.0, 59.8), (2, None, None)]


@pytest.mark.parametrize("missing", ["no bindings", "no driver library"])
def test_without_nvml_nvidia_smi_is_read(monkeypatch, tmp_path, missing) -> None:
    install_nvidia_smi(tmp_path / "bin", monkeypatch, {INVENTORY_QUERY: Answer(FOUR_GPUS)})
    nvml = None if missing == "no bindings" else fake_nvml([], init=LibraryNotFound("libnvidia-ml.so.1"))
    monkeypatch.setitem(sys.modules, "pynvml", nvml)  # None: `import pynvml` raises ImportError
    assert [g.index for g in detect(ControlConfig()).gpus] == [0, 1, 2, 3]


def test_a_hung_nvml_gives_no_gpus_after_the_deadline(monkeypatch, no_smi, caplog) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(FOUR, init_sleep_s=5))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert _nvml.devices(timeout_s=0.3) == []
    assert time.monotonic() - started < 2 and "did not answer within 0.3 s" in caplog.text
    assert not no_smi.exists()  # a wedged driver: no second wait on nvidia-smi


def test_an_nvml_error_is_said_and_falls_back(monkeypatch, tmp_path, caplog) -> None:
    install_nvidia_smi(tmp_path / "bin", monkeypatch, {INVENTORY_QUERY: Answer(FOUR_GPUS)})
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(FOUR, init=NVMLError("Unknown Error")))
    with caplog.at_level(logging.WARNING):
        assert len(detect(ControlConfig()).gpus) == 4
    assert "NVML failed reading the GPU inventory (Unknown Error)" in caplog.text
