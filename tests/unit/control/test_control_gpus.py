"""The control plane's GPU paths on a machine without one: nvidia-smi's output parsed from
literals, then the real loop, executor and `llmos top` data against a stand-in `nvidia-smi`."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.unit.control._fake_gpu import (
    FOUR_GPUS,
    FOUR_GPUS_USE,
    INVENTORY_QUERY,
    USE_QUERY,
    Answer,
    install_nvidia_smi,
)
from tests.unit.control.test_control_loop import until

from llmos.control._auth import Caller
from llmos.control._config import ControlConfig
from llmos.control._errors import Rejected
from llmos.control._inventory import Gpu, Inventory, detect, parse_nvidia_smi
from llmos.control._loop import ControlLoop
from llmos.control._top import machine_view, parse_gpu_use
from llmos.errors import LlmosError

pytestmark = pytest.mark.timeout(60)
ADMIN = Caller("admin", "admin", "test")
PY = sys.executable
H100 = "NVIDIA H100 80GB HBM3"
# Prints what the job sees, then holds its placement until the file named by its argument exists.
PROBE = ("import os, pathlib, sys, time\n"
         "print(repr(os.environ['CUDA_VISIBLE_DEVICES']), os.environ['CUDA_DEVICE_ORDER'], flush=True)\n"
         "while not pathlib.Path(sys.argv[1]).exists():\n    time.sleep(0.02)\n")


# ---- parsing: literal nvidia-smi output ------------------------------------------------------------

def test_parse_reads_index_name_with_spaces_and_memory_in_gb() -> None:
    gpus, skipped = parse_nvidia_smi("0, NVIDIA H200, 143771\n1, NVIDIA GeForce RTX 4090, 24564\n")
    assert gpus == [Gpu(0, "NVIDIA H200", 140.4), Gpu(1, "NVIDIA GeForce RTX 4090", 24.0)] and skipped == []


def test_parse_reads_the_mig_column_and_skips_a_gpu_in_mig_mode_with_the_fix() -> None:
    text = ("0, NVIDIA A100-SXM4-80GB, 81920, Enabled\n1, NVIDIA A100-SXM4-80GB, 81920, Disabled\n"
            "2, Tesla V100-SXM2-32GB, 32768, [N/A]\n")
    gpus, skipped = parse_nvidia_smi(text)
    assert [g.index for g in gpus] == [1, 2] and gpus[1].name == "Tesla V100-SXM2-32GB"
    assert len(skipped) == 1 and "GPU 0 is in MIG mode" in skipped[0] and "nvidia-smi -i 0 -mig 0" in skipped[0]


def test_parse_keeps_a_gpu_whose_memory_is_not_reported() -> None:
    gpus, skipped = parse_nvidia_smi("0, NVIDIA GB10, [N/A], [N/A]\n1, NVIDIA T4, [Not Supported]\n")
    assert gpus == [Gpu(0, "NVIDIA GB10", None), Gpu(1, "NVIDIA T4", None)] and skipped == []
    assert Inventory((0,), 1.0, tuple(gpus)).describe()["gpus"][0] == {"index": 0, "name": "NVIDIA GB10",
                                                                       "memory_gb": None}


def test_parse_ignores_blank_lines_and_names_each_line_it_skips() -> None:
    text = ("\n0, NVIDIA H200, 143771\n   \n"
            "1, NVIDIA H200, [Unknown Error]\n"
            "MIG 3g.71gb     Device  0: (UUID: MIG-5c4e6f2a-0000-5d9e-9b0a-123456789abc)\n"
            "2, NVIDIA H200\n\n")
    gpus, skipped = parse_nvidia_smi(text)
    assert gpus == [Gpu(0, "NVIDIA H200", 140.4)]
    assert len(skipped) == 3
    assert skipped[0] == "'1, NVIDIA H200, [Unknown Error]': GPU 1 reports memory '[Unknown Error]'"
    assert skipped[1].startswith("'MIG 3g.71gb") and skipped[2].startswith("'2, NVIDIA H200': not an 'index,")


def test_parse_of_a_driver_error_finds_no_gpus_and_names_the_message() -> None:
    message = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the "
               "latest NVIDIA driver is installed and running.\n")
    gpus, skipped = parse_nvidia_smi(message)
    assert gpus == [] and len(skipped) == 1 and "couldn't communicate" in skipped[0]
    assert parse_nvidia_smi("No devices were found\n")[0] == []
    assert parse_nvidia_smi("") == ([], [])


def test_parse_gpu_use_reads_numbers_and_leaves_unreported_values_unknown() -> None:
    assert parse_gpu_use(FOUR_GPUS_USE + "garbage\n\n") == {0: (97.0, 59.8), 1: (0.0, 0.0), 2: (None, None),
                                                             3: (12.0, 1.0)}


# ---- detection: the stand-in nvidia-smi ------------------------------------------------------------

@pytest.fixture
def four_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return install_nvidia_smi(tmp_path / "bin", monkeypatch, {INVENTORY_QUERY: Answer(FOUR_GPUS),
                                                              USE_QUERY: Answer(FOUR_GPUS_USE)})


def test_detect_lists_the_four_gpus_with_names_and_memory(four_gpus: Path) -> None:
    inventory = detect(ControlConfig())
    assert inventory.describe()["gpus"] == [{"index": i, "name": H100, "memory_gb": 79.6} for i in range(4)]
    assert inventory.node().gpus == 4
    assert four_gpus.read_text() == f"--query-gpu={INVENTORY_QUERY} --format=csv,noheader,nounits\n"


def test_configured_gpus_expose_only_those_and_an_unknown_index_is_a_clear_error(four_gpus: Path) -> None:
    assert [g.index for g in detect(ControlConfig(gpus=[3, 1])).gpus] == [1, 3]
    assert detect(ControlConfig(gpus=[])).gpus == ()
    with pytest.raises(LlmosError) as err:
        detect(ControlConfig(gpus=[0, 7]))
    assert err.value.message == "gpus: [7] not found; this host has GPU(s) [0, 1, 2, 3]."
    assert "nvidia-smi -L" in (err.value.hint or "")


def test_a_failing_driver_gives_no_gpus_and_one_warning(tmp_path, monkeypatch, caplog) -> None:
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
    install_nvidia_smi(tmp_path, monkeypatch, {INVENTORY_QUERY: Answer(message, code=9)})
    with caplog.at_level(logging.WARNING, "llmos.control._inventory"):
        assert detect(ControlConfig()).gpus == ()
    assert [r.getMessage() for r in caplog.records] == [
        "nvidia-smi exited with status 9 (NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
        "driver.); scheduling the 0 GPU(s) it listed."]
    with pytest.raises(LlmosError, match=r"gpus: \[0\] not found; this host has GPU\(s\) none"):
        detect(ControlConfig(gpus=[0]))


def test_a_lost_gpu_leaves_the_others_schedulable_with_a_warning(tmp_path, monkeypatch, caplog) -> None:
    out = FOUR_GPUS.replace("2, NVIDIA H100 80GB HBM3, 81559, Disabled\n", "")
    err = "Unable to determine the device handle for GPU 0000:C3:00.0: Unknown Error\n"
    install_nvidia_smi(tmp_path, monkeypatch, {INVENTORY_QUERY: Answer(out, code=15, stderr=err)})
    with caplog.at_level(logging.WARNING, "llmos.control._inventory"):
        assert [g.index for g in detect(ControlConfig(gpus=[0, 1, 3])).gpus] == [0, 1, 3]
    assert caplog.messages == ["nvidia-smi exited with status 15 (Unable to determine the device handle for GPU "
                               "0000:C3:00.0: Unknown Error); scheduling the 3 GPU(s) it listed."]


def test_skipped_lines_are_warned_one_by_one(tmp_path, monkeypatch, caplog) -> None:
    out = "0, NVIDIA A100-SXM4-80GB, 81920, Enabled\n1, NVIDIA A100-SXM4-80GB, 81920, Disabled\n"
    install_nvidia_smi(tmp_path, monkeypatch, {INVENTORY_QUERY: Answer(out)})
    with caplog.at_level(logging.WARNING, "llmos.control._inventory"):
        assert [g.index for g in detect(ControlConfig()).gpus] == [1]
    assert caplog.messages == ["nvidia-smi: skipped '0, NVIDIA A100-SXM4-80GB, 81920, Enabled': GPU 0 is in MIG "
                               "mode and cannot be given to a job whole; to schedule it, disable MIG with: "
                               "nvidia-smi -i 0 -mig 0."]


def test_a_hung_nvidia_smi_gives_no_gpus_after_the_timeout(tmp_path, monkeypatch, caplog) -> None:
    install_nvidia_smi(tmp_path, monkeypatch, {INVENTORY_QUERY: Answer(FOUR_GPUS, sleep_s=30)})
    monkeypatch.setattr("llmos.control._inventory._SMI_TIMEOUT_S", 0.5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "llmos.control._inventory"):
        assert detect(ControlConfig()).gpus == ()
    assert time.monotonic() - started < 5
    assert caplog.messages == ["nvidia-smi did not answer within 0.5 s; scheduling no GPUs."]


def test_a_driver_without_the_mig_field_is_asked_again_without_it(tmp_path, monkeypatch, caplog) -> None:
    old = "0, Tesla P100-PCIE-16GB, 16280\n1, Tesla P100-PCIE-16GB, 16280\n"
    calls = install_nvidia_smi(tmp_path, monkeypatch, {"index,name,memory.total": Answer(old)})
    with caplog.at_level(logging.WARNING, "llmos.control._inventory"):
        assert detect(ControlConfig()).gpus == (Gpu(0, "Tesla P100-PCIE-16GB", 15.9),
                                                Gpu(1, "Tesla P100-PCIE-16GB", 15.9))
    assert caplog.records == [] and len(calls.read_text().splitlines()) == 2


def test_no_nvidia_smi_means_no_gpus_and_no_warning(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with caplog.at_level(logging.WARNING, "llmos.control._inventory"):
        assert detect(ControlConfig()).gpus == ()
    assert caplog.records == []


def test_the_daemon_path_never_imports_a_cuda_library(four_gpus: Path) -> None:
    # Importing torch is where CUDA initialisation starts; the daemon detects GPUs with NVML (the management
    # library, which holds no GPU memory) or nvidia-smi only. NVML is hidden: the stand-in answers here.
    probe = ("import sys\nsys.modules['pynvml'] = None\n"
             "import llmos.control._daemon, llmos.control._app, llmos.control._loop, llmos.control._top\n"
             "import llmos.control._deployments, llmos.deploy, llmos.scheduler\n"
             "from llmos.control._config import ControlConfig\n"
             "from llmos.control._inventory import detect\n"
             "assert len(detect(ControlConfig()).gpus) == 4\n"
             "print(sorted(m for m in ('torch', 'cupy', 'jax', 'tensorflow') if m in sys.modules))\n")
    out = subprocess.run([PY, "-c", probe], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"


# ---- end to end: the real loop and executor on four stand-in GPUs ----------------------------------

def gpu_command(release: Path, gpus: int, name: str = "g") -> dict:
    return {"kind": "command", "name": name, "run": [PY, "-c", PROBE, str(release)],
            "resources": {"cpus": 1, "gpus": gpus}}


def seen(service, job_id: int) -> str:
    """What the job printed at start (its CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER), or ''."""
    if not service.log_files(job_id):
        return ""
    return service.read_log(job_id, "attempt-1/output.log")["text"].strip()


def placed_gpus(service, job_id: int) -> list[int]:
    return service.job(job_id)["attempts"][-1]["placement"]["workers"][0]["gpus"]


@pytest.fixture
def inventory(four_gpus: Path) -> Inventory:
    # The control tests' machine (cores 0 and 1, 8 GB), with the GPUs nvidia-smi reports.
    return Inventory((0, 1), 8.0, detect(ControlConfig()).gpus)


@pytest.fixture
def loop(engine, inventory, config):
    loop = ControlLoop(engine, inventory, config, log=lambda _m: None)
    yield loop
    loop.stop_all("test over", timeout_s=5)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_gpu_jobs_see_exactly_their_disjoint_gpus_and_top_shows_who_holds_each(service, loop, tmp_path) -> None:
    release = tmp_path / "release"
    a = service.submit(ADMIN, gpu_command(release, 2, "a"))["id"]
    b = service.submit(ADMIN, gpu_command(release, 2, "b"))["id"]
    until(loop, lambda: bool(seen(service, a)) and bool(seen(service, b)))
    gpus_a, gpus_b = placed_gpus(service, a), placed_gpus(service, b)
    assert len(gpus_a) == len(gpus_b) == 2 and set(gpus_a) | set(gpus_b) == {0, 1, 2, 3}
    for job_id, gpus in ((a, gpus_a), (b, gpus_b)):
        assert seen(service, job_id) == f"'{','.join(map(str, gpus))}' PCI_BUS_ID"
        assert service.job(job_id)["placement"]["gpus"] == gpus

    view = machine_view(service)
    holder = {g: str(a) for g in gpus_a} | {g: str(b) for g in gpus_b}
    assert [(g["index"], g["name"], g["job"]) for g in view["gpus"]] == [(i, H100, holder[i]) for i in range(4)]
    assert [(g["util_percent"], g["memory_used_gb"]) for g in view["gpus"]] == [(97.0, 59.8), (0.0, 0.0),
                                                                               (None, None), (12.0, 1.0)]
    assert {j["id"]: j["gpus"] for j in view["jobs"]} == {str(a): gpus_a, str(b): gpus_b}
    gpu_rows = [row for row in _table_rows(_render(view)) if row[1:2] == [H100]]
    assert gpu_rows == [["0", H100, "97%", "59.8/79.6 GB", holder[0]], ["1", H100, "0%", "0.0/79.6 GB", holder[1]],
                        ["2", H100, "?", "?", holder[2]], ["3", H100, "12%", "1.0/79.6 GB", holder[3]]]
    release.touch()
    until(loop, lambda: service.job(a)["state"] == service.job(b)["state"] == "SUCCEEDED")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_gpu_job_waits_while_the_gpus_are_held_and_starts_when_they_free(service, loop, tmp_path) -> None:
    hold, wait_release = tmp_path / "hold", tmp_path / "wait"
    holder = service.submit(ADMIN, gpu_command(hold, 3, "holder"))["id"]
    until(loop, lambda: bool(seen(service, holder)))
    waiting = service.submit(ADMIN, gpu_command(wait_release, 2, "waiting"))["id"]
    cpu_only = service.submit(ADMIN, {"kind": "command", "name": "cpu", "run": [PY, "-c", "pass"]})["id"]
    # A core is free (the CPU job runs on it) but only one GPU: the GPU job waits.
    until(loop, lambda: service.job(cpu_only)["state"] == "SUCCEEDED")
    for _ in range(5):
        loop.tick()
        time.sleep(0.05)
    assert service.job(waiting)["state"] == "QUEUED" and service.job(waiting)["attempts"] == []
    hold.touch()
    until(loop, lambda: bool(seen(service, waiting)))
    gpus = placed_gpus(service, waiting)
    assert len(set(gpus)) == 2 and seen(service, waiting) == f"'{','.join(map(str, gpus))}' PCI_BUS_ID"
    assert service.job(waiting)["attempts"][0]["started_s"] >= service.job(holder)["attempts"][0]["ended_s"] - 0.05
    wait_release.touch()
    until(loop, lambda: service.job(waiting)["state"] == "SUCCEEDED")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_job_asking_for_more_gpus_than_exist_is_rejected_at_submit(service, tmp_path) -> None:
    with pytest.raises(Rejected, match=r"it asks for 5 GPUs but it has 4\."):
        service.submit(ADMIN, gpu_command(tmp_path / "never", 5))
    assert service.counts() == {}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_exposed_gpus_are_handed_out_by_their_nvidia_smi_index(engine, config, four_gpus, tmp_path) -> None:
    from llmos.control._service import Service

    inventory = Inventory((0, 1), 8.0, detect(config.model_copy(update={"gpus": [1, 3]})).gpus)
    service = Service(engine, inventory, config)
    loop = ControlLoop(engine, inventory, config, log=lambda _m: None)
    try:
        with pytest.raises(Rejected, match=r"3 GPUs but it has 2\."):
            service.submit(ADMIN, gpu_command(tmp_path / "never", 3))
        release = tmp_path / "release"
        job = service.submit(ADMIN, gpu_command(release, 2))["id"]
        until(loop, lambda: bool(seen(service, job)))
        assert seen(service, job) == "'1,3' PCI_BUS_ID" and placed_gpus(service, job) == [1, 3]
        assert [(g["index"], g["job"]) for g in machine_view(service)["gpus"]] == [(1, str(job)), (3, str(job))]
        release.touch()
        until(loop, lambda: service.job(job)["state"] == "SUCCEEDED")
    finally:
        loop.stop_all("test over", timeout_s=5)


def _render(view: dict) -> str:
    """`llmos top --once` as it prints `view`."""
    import io

    from rich.console import Console

    from llmos.cli.control import _top_view

    console = Console(file=io.StringIO(), width=160)
    console.print(_top_view(view))
    return console.file.getvalue()


def _table_rows(rendered: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in rendered.splitlines() if line.startswith("│")]
