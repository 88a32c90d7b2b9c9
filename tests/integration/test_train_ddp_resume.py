"""The recipe end to end through the real CLI: DDP equivalence, kill-and-resume, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.integration._util import LLMOS, llmos, tiny_bert_job, weights, write_job

pytestmark = pytest.mark.slow


def sgd_job(folder: Path, model: Path, data: tuple[Path, Path]) -> Path:
    """The job every equivalence test runs: one epoch (25 steps of global batch 8) of plain SGD.

    SGD: AdamW would blow float noise in exactly-zero gradients (attention key biases) up to
    lr-sized steps, which says nothing about whether the gradients agree. One thread per worker
    (see `tiny_bert_job`).
    """
    train, test = data
    return write_job(folder, f"name: t\noutput: {folder / 'unused'}\nmodel: {{name: {model}, max_length: 32}}\n"
                             f"data: {{train: {train}, eval: {test}}}\n"
                             "train: {epochs: 1, batch_size: 8, optimizer: sgd, lr: 0.2, precision: fp32, "
                             "log_every_steps: 5, num_threads: 1}\n"
                             "checkpoint: {every_steps: 10}\ntracking: {enabled: false}\n")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, sentiment_csv: tuple[Path, Path],
                no_dropout_bert: Path) -> dict[str, torch.Tensor]:
    """The weights of the SGD job run by one process with the whole global batch, which the
    multi-worker runs of this module must match. Trained once, in this process: the recipe itself,
    which is what `llmos train` starts; the runs compared with it go through the CLI."""
    from llmos.run import prepare_run_dir
    from llmos.run.train import train
    from llmos.spec import load_job

    folder = tmp_path_factory.mktemp("one-process")
    job = load_job(sgd_job(folder, no_dropout_bert, sentiment_csv), [f"output={folder / 'run'}"])
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    threads = torch.get_num_threads()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("LLMOS_HOME", str(folder / "home"))
            assert train(prepare_run_dir(job)) == 0  # type: ignore[arg-type]
    finally:  # the recipe sets its stop handlers and thread count: give pytest its own back
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        torch.set_num_threads(threads)
    return weights(folder / "run")


def test_ddp_two_workers_with_grad_accum_match_one_process_with_the_same_global_batch(
        tmp_path: Path, sentiment_csv: tuple[Path, Path], no_dropout_bert: Path,
        one_process: dict[str, torch.Tensor]) -> None:
    # 2 workers x 2 micro-batches of 2 = one process's batch of 8: DDP's gradient all-reduce and
    # accumulation (no_sync on all but the last micro-batch) in one run.
    job = sgd_job(tmp_path, no_dropout_bert, sentiment_csv)
    llmos("train", str(job), f"output={tmp_path / 'ddp'}", "resources.procs=2", "train.batch_size=2",
          "train.grad_accum=2")
    one, ddp = one_process, weights(tmp_path / "ddp")
    assert one.keys() == ddp.keys()
    # Float tolerance: summation order and per-micro-batch padding differ, nothing else does.
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], rtol=1e-3, atol=1e-4, msg=name)
    moved = max((one[n] - initial).abs().max().item() for n, initial in weights_before(no_dropout_bert).items()
                if n in one)
    assert moved > 1e-2  # the runs really trained


def weights_before(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {f"bert.{k}": v for k, v in load_file(str(folder / "model.safetensors")).items()}


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path.name} appeared"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def _newest_step(checkpoints: Path) -> int:
    return max(int(p.name.removeprefix("step-")) for p in checkpoints.glob("step-*"))


def test_sigkill_then_sigterm_mid_run_then_resume_ends_with_the_weights_of_an_undisturbed_run(
        tmp_path: Path, sentiment_csv: tuple[Path, Path], undisturbed_run: Path) -> None:
    run = tmp_path / "run"
    checkpoints = run / "checkpoints"
    # 100 steps: each interruption below lands with tens of steps still to go.
    job = tiny_bert_job(tmp_path, sentiment_csv, run)

    # SIGKILL to the whole process group, mid-epoch 2 and between checkpoints.
    proc = subprocess.Popen([*LLMOS, "train", str(job)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(checkpoints / "step-00000030", proc)
    time.sleep(0.2)  # land between checkpoints, so the resumed run redoes lost steps
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists()
    killed_at = _newest_step(checkpoints)
    # A newer checkpoint torn by the kill must be skipped, never loaded.
    torn = checkpoints / "step-00000099"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\x00" * 64)

    # The resumed run gets SIGTERM (to the launcher only) once it wrote a checkpoint of its own:
    # it checkpoints where it is and exits 75.
    proc = subprocess.Popen([*LLMOS, "train", str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(checkpoints / f"step-{(killed_at // 10 + 1) * 10:08d}", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, out + err
    assert f"resumed from step-{killed_at:08d}" in out
    assert "skipping checkpoint" in err and "step-00000099" in err
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "preempted" and state["step"] > killed_at
    assert (checkpoints / f"step-{state['step']:08d}").is_dir()
    assert "resumes" in out

    resumed = llmos("train", str(job))
    assert f"resumed from step-{state['step']:08d}" in resumed.stdout
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert json.loads((undisturbed_run / "summary.json").read_text())["metrics"]["accuracy"] > 0.9
    straight, again = weights(undisturbed_run), weights(run)
    for name in straight:
        torch.testing.assert_close(again[name], straight[name], rtol=0, atol=0, msg=name)
    finished = llmos("train", str(job), check=False)
    assert finished.returncode == 2 and "--fresh" in finished.stderr


def _torchrun_workers(launcher: int) -> list:
    import psutil

    for proc in psutil.Process(launcher).children(recursive=True):
        if "torch.distributed.run" in proc.cmdline():
            return proc.children()
    return []


def test_a_gang_started_again_runs_its_workers_warm_and_a_sigterm_still_checkpoints(
        tmp_path: Path, sentiment_csv: tuple[Path, Path]) -> None:
    """From an environment's second gang on, each worker torchrun starts and watches is a thin
    process (torch never loaded) whose program is forked from the warm server (docs/cpu.md). A
    SIGTERM to `llmos train` still goes launcher -> torchrun -> worker -> program: the run
    checkpoints where it is and exits 75, as with workers started as new processes."""
    job = tiny_bert_job(tmp_path, sentiment_csv, tmp_path / "unused")
    gang = ["resources.procs=2", "resources.cpus_per_proc=1"]
    llmos("train", str(job), f"output={tmp_path / 'first'}", *gang, "train.max_steps=2")  # starts a server if none
    servers = Path(os.environ["LLMOS_RUNTIME_DIR"]) / f"llmos-warm-{os.getuid()}"
    deadline = time.monotonic() + 180
    while any(servers.glob("*.starting")) and time.monotonic() < deadline:  # the server imports
        time.sleep(0.2)

    run = tmp_path / "second"
    proc = subprocess.Popen([*LLMOS, "train", str(job), f"output={run}", *gang], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(run / "checkpoints" / "step-00000020", proc)
    workers = _torchrun_workers(proc.pid)
    assert len(workers) == 2, workers
    for worker in workers:
        assert worker.cmdline()[-3:-1] == ["-m", "llmos.run"]
        assert "libtorch" not in Path(f"/proc/{worker.pid}/maps").read_text(), "a worker imported torch itself"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, out + err
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "preempted" and (run / "checkpoints" / f"step-{state['step']:08d}").is_dir()


def test_two_nodes_rendezvous_and_match_one_process(tmp_path: Path, sentiment_csv: tuple[Path, Path],
                                                    no_dropout_bert: Path,
                                                    one_process: dict[str, torch.Tensor]) -> None:
    """Two `llmos train` commands as node 0 and node 1 of one job, meeting at a rendezvous address
    on this machine (the same commands run on two machines sharing the output folder)."""
    import socket

    job = sgd_job(tmp_path, no_dropout_bert, sentiment_csv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = [str(job), f"output={tmp_path / 'nodes'}", "resources.nodes=2",
              f"resources.rdzv_endpoint=127.0.0.1:{port}", "train.batch_size=4"]
    node1 = subprocess.Popen([*LLMOS, "train", *common, "resources.node_rank=1"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    llmos("train", *common, "resources.node_rank=0")
    assert node1.wait(timeout=120) == 0, node1.stdout.read() if node1.stdout else ""
    nodes = weights(tmp_path / "nodes")
    assert one_process.keys() == nodes.keys()
    for name in one_process:
        torch.testing.assert_close(nodes[name], one_process[name], rtol=1e-3, atol=1e-4, msg=name)
