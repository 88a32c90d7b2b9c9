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

from tests.integration._util import LLMOS, llmos, weights, write_job

pytestmark = pytest.mark.slow


def job_text(model: Path | str, train: Path, test: Path, out: Path, **train_cfg: object) -> str:
    cfg = {"epochs": 2, "batch_size": 8, "lr": 0.005, "precision": "fp32", "log_every_steps": 5, **train_cfg}
    body = ", ".join(f"{k}: {v}" for k, v in cfg.items())
    return (f"name: t\noutput: {out}\nmodel: {{name: {model}, max_length: 32}}\n"
            f"data: {{train: {train}, eval: {test}}}\ntrain: {{{body}}}\n"
            f"checkpoint: {{every_steps: 10}}\ntracking: {{enabled: false}}\n")


def test_ddp_two_workers_match_one_process_with_the_same_global_batch(
        tmp_path: Path, sentiment_csv: tuple[Path, Path], no_dropout_bert: Path) -> None:
    train, test = sentiment_csv
    # SGD: AdamW would blow float noise in exactly-zero gradients (attention key biases) up to
    # lr-sized steps, which says nothing about whether the gradients agree.
    job = write_job(tmp_path, job_text(no_dropout_bert, train, test, tmp_path / "unused", optimizer="sgd", lr=0.2,
                                       epochs=2))
    llmos("train", str(job), f"output={tmp_path / 'one'}")
    llmos("train", str(job), f"output={tmp_path / 'ddp'}", "resources.procs=2", "train.batch_size=4")
    llmos("train", str(job), f"output={tmp_path / 'accum'}", "train.batch_size=4", "train.grad_accum=2")
    one, ddp, accum = (weights(tmp_path / n) for n in ("one", "ddp", "accum"))
    assert one.keys() == ddp.keys()
    # Float tolerance: summation order and per-micro-batch padding differ, nothing else does.
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], rtol=1e-3, atol=1e-4, msg=name)
        torch.testing.assert_close(accum[name], one[name], rtol=1e-3, atol=1e-4, msg=name)
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


def test_sigkill_mid_epoch_then_resume_ends_with_the_same_weights(
        tmp_path: Path, sentiment_csv: tuple[Path, Path]) -> None:
    train, test = sentiment_csv
    # tiny-bert keeps dropout on: per-step seeding makes even the dropout masks resume exactly.
    job = write_job(tmp_path, job_text("tiny-bert", train, test, tmp_path / "x", epochs=6, precision="auto"))
    llmos("train", str(job), f"output={tmp_path / 'straight'}")

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*LLMOS, "train", str(job), f"output={killed}"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(killed / "checkpoints" / "step-00000030", proc)  # 25 steps an epoch: mid-epoch 2
    time.sleep(0.2)  # land between checkpoints, so the resumed run redoes lost steps
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "summary.json").exists()
    # A newer checkpoint torn by the kill must be skipped, never loaded.
    torn = killed / "checkpoints" / "step-00000099"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\x00" * 64)

    resumed = llmos("train", str(job), f"output={killed}")
    assert "resumed from step-000000" in resumed.stdout
    assert "skipping checkpoint" in resumed.stderr and "step-00000099" in resumed.stderr
    assert json.loads((tmp_path / "straight" / "summary.json").read_text())["metrics"]["accuracy"] > 0.9
    straight, again = weights(tmp_path / "straight"), weights(killed)
    for name in straight:
        torch.testing.assert_close(again[name], straight[name], rtol=0, atol=0, msg=name)


def test_sigterm_checkpoints_and_exits_75_then_resumes(tmp_path: Path, sentiment_csv: tuple[Path, Path]) -> None:
    train, test = sentiment_csv
    job = write_job(tmp_path, job_text("tiny-bert", train, test, tmp_path / "run", epochs=8))
    run = tmp_path / "run"
    proc = subprocess.Popen([*LLMOS, "train", str(job)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(run / "checkpoints" / "step-00000010", proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 75, out
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "preempted"
    assert (run / "checkpoints" / f"step-{state['step']:08d}").is_dir()
    assert "resumes" in out

    llmos("train", str(job))
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    finished = llmos("train", str(job), check=False)
    assert finished.returncode == 2 and "--fresh" in finished.stderr


def test_two_nodes_rendezvous_and_match_one_process(tmp_path: Path, sentiment_csv: tuple[Path, Path],
                                                    no_dropout_bert: Path) -> None:
    """Two `llmos train` commands as node 0 and node 1 of one job, meeting at a rendezvous address
    on this machine (the same commands run on two machines sharing the output folder)."""
    import socket

    train, test = sentiment_csv
    job = write_job(tmp_path, job_text(no_dropout_bert, train, test, tmp_path / "nodes", optimizer="sgd", lr=0.2,
                                       epochs=1))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = [str(job), "resources.nodes=2", f"resources.rdzv_endpoint=127.0.0.1:{port}", "train.batch_size=4"]
    node1 = subprocess.Popen([*LLMOS, "train", *common, "resources.node_rank=1"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    llmos("train", *common, "resources.node_rank=0")
    assert node1.wait(timeout=120) == 0, node1.stdout.read() if node1.stdout else ""
    llmos("train", str(job), f"output={tmp_path / 'one'}")
    one, nodes = weights(tmp_path / "one"), weights(tmp_path / "nodes")
    for name in one:
        torch.testing.assert_close(nodes[name], one[name], rtol=1e-3, atol=1e-4, msg=name)
