"""Two things at once on one machine: does each llmos process degrade gracefully when cores are shared?

One run, two set-ups side by side:
- old: libgomp's own OpenMP waiting (GOMP_SPINCOUNT=300000, what every llmos process ran before
  llmos._threads), thread counts as llmos picks them;
- new: llmos's rule (llmos._threads: spin count capped, threads from the usable cores).

Phases, each for both set-ups: a quickstart-sized training (`llmos quickstart`) alone; two at
once in separate LLMOS_HOMEs; one training beside `llmos serve` under closed-loop load; alone
again. Floors (issue 18): two at once <= 2.3x alone each; alone new >= 0.97x as fast as alone
old; serving p95 beside a training <= 2.5x its p95 alone.

    python benchmarks/contention.py [--epochs 4] [--serve-concurrency 4] [--setups old,new] [--pair-setups new,old]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine

LLMOS = str(Path(sys.executable).with_name("llmos"))
CORES = str(len(os.sched_getaffinity(0)))
# Each set-up's environment for a training and for a server. "old" is how llmos ran before its
# threading rule: libgomp's own spinning (a server: 10,000), a fixed thread count of every core
# (set as the user would, so nothing adapts); "new" sets nothing, so the rule decides.
SETUPS = {
    "old": {"train": {"GOMP_SPINCOUNT": "300000", "OMP_NUM_THREADS": CORES},
            "serve": {"GOMP_SPINCOUNT": "10000", "OMP_NUM_THREADS": CORES}},
    "new": {"train": {}, "serve": {}},
    # Variants for choosing the rule's constants (--setups): a spin count with adaptive threads.
    "spin1000": {"train": {"GOMP_SPINCOUNT": "1000"}, "serve": {}},
    "spin300k": {"train": {"GOMP_SPINCOUNT": "300000"}, "serve": {}},
}
_THEIRS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LLMOS_JOB_ID",
           "LLMOS_WORKER_CORES")


def env_for(setup: str, home: Path, role: str = "train") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _THEIRS}
    return {**env, **SETUPS[setup][role], "LLMOS_HOME": str(home), "TOKENIZERS_PARALLELISM": "false"}


def start_training(setup: str, home: Path, epochs: float) -> tuple[subprocess.Popen, float]:
    proc = subprocess.Popen([LLMOS, "quickstart", "--epochs", str(epochs)], env=env_for(setup, home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, time.perf_counter()


def finish(proc: subprocess.Popen, started: float) -> float:
    _, err = proc.communicate()
    wall_s = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"a training failed (exit {proc.returncode}):\n{err[-3000:]}")
    return wall_s


def alone(setup: str, root: Path, epochs: float) -> float:
    home = Path(tempfile.mkdtemp(dir=root))
    wall_s = finish(*start_training(setup, home, epochs))
    print(f"  {setup} alone: {wall_s:.1f} s", flush=True)
    return wall_s


def pair(setup: str, root: Path, epochs: float) -> list[float]:
    runs = [start_training(setup, Path(tempfile.mkdtemp(dir=root)), epochs) for _ in range(2)]
    walls = [finish(*run) for run in runs]
    print(f"  {setup} two at once: {walls[0]:.1f} s, {walls[1]:.1f} s", flush=True)
    return walls


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench(url: str, concurrency: int, duration_s: float, out: Path) -> dict:
    subprocess.run([LLMOS, "bench", "serve", url, "--concurrency", str(concurrency), "--duration",
                    f"{duration_s:g}s", "--warmup", "2s", "--json", str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.read_text())


def serving(setup: str, model_home: Path, root: Path, args: argparse.Namespace) -> dict:
    """p95 of a server under closed-loop load, alone and beside a training."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([LLMOS, "serve", "quickstart@candidate", "--port", str(port)],
                              env=env_for(setup, model_home, "serve"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, server)
        quiet = bench(url, args.serve_concurrency, args.serve_s, root / f"{setup}-alone.json")
        proc, started = start_training(setup, Path(tempfile.mkdtemp(dir=root)), args.epochs)
        time.sleep(args.train_load_s)  # past the training's imports and data loading, into its steps
        busy = bench(url, args.serve_concurrency, args.serve_s, root / f"{setup}-beside.json")
        train_s = finish(proc, started)
    finally:
        server.terminate()
        server.wait(timeout=60)
    result = {"alone": _brief(quiet), "beside_training": _brief(busy), "training_wall_s": train_s,
              "p95_ratio": busy["p95_ms"] / quiet["p95_ms"]}
    print(f"  {setup} serving p95 alone {quiet['p95_ms']:.1f} ms, beside a training {busy['p95_ms']:.1f} ms "
          f"({result['p95_ratio']:.2f}x); training {train_s:.1f} s", flush=True)
    return result


def wait_ready(url: str, server: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline and server.poll() is None:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server at {url} did not become ready")


def daemon_phase(setup: str, root: Path, epochs: float) -> dict:
    """A training the daemon runs on every core, alone and then with a `llmos quickstart` started by
    hand beside it (issue 18, point 4). old: the job fixes its threads (train.num_threads) and both
    spin as libgomp does; new: the rule (the hand-started run keeps off the daemon's cores or runs
    one thread, the daemon's job gives up threads while its cores are busy)."""
    import yaml

    from llmos.data import bundled_dataset_path

    home = Path(tempfile.mkdtemp(dir=root))
    env = env_for(setup, home)
    env.pop("OMP_NUM_THREADS", None)  # the daemon sets its jobs' own
    data = bundled_dataset_path("support-intents")
    spec = {"kind": "train", "name": "daemon-job", "model": {"name": "minilm-l6", "max_length": 64},
            "data": {"train": str(data / "train.csv"), "eval": str(data / "test.csv"), "text_column": "text",
                     "label_column": "label"},
            "train": {"epochs": epochs, "batch_size": 16, "lr": 1e-4, "warmup_ratio": 0.1,
                      **({"num_threads": int(CORES)} if setup == "old" else {})},
            "checkpoint": {"every_steps": None}, "resources": {"cpus_per_proc": int(CORES)}}
    (home / "job.yaml").write_text(yaml.safe_dump(spec))
    subprocess.run([LLMOS, "up", "--port", "0"], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        alone_s = _daemon_job(home, env)
        hand_home = Path(tempfile.mkdtemp(dir=root))
        # The daemon's home, so it sees the daemon; its own MLflow store, so the two never share a SQLite file.
        hand_env = {**env_for(setup, hand_home), "LLMOS_HOME": str(home),
                    "LLMOS_TRACKING_URI": f"sqlite:///{hand_home / 'mlflow.db'}"}
        job_id = _submit(home, env)
        _wait_state(home, env, job_id, "RUNNING")
        time.sleep(3)
        hand = subprocess.Popen([LLMOS, "quickstart", "--epochs", str(epochs)], env=hand_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        hand_started = time.perf_counter()
        beside_s = _wait_state(home, env, job_id, "SUCCEEDED")
        _, err = hand.communicate()
        hand_s = time.perf_counter() - hand_started
        said = [line for line in err.splitlines() if "daemon" in line]  # what it said about its cores
    finally:
        subprocess.run([LLMOS, "down"], env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = {"job_alone_s": alone_s, "job_beside_hand_run_s": beside_s, "hand_run_s": hand_s,
              "job_slowdown": beside_s / alone_s, "hand_run_said": said}
    print(f"  {setup}: the daemon's job {alone_s:.1f} s alone, {beside_s:.1f} s beside a hand-started training "
          f"({result['job_slowdown']:.2f}x); the hand-started one {hand_s:.1f} s; it said: {said}", flush=True)
    return result


def _submit(home: Path, env: dict[str, str]) -> int:
    out = subprocess.run([LLMOS, "submit", str(home / "job.yaml"), "--json"], env=env, check=True,
                         capture_output=True, text=True).stdout
    return int(json.loads(out)["id"])


def _daemon_job(home: Path, env: dict[str, str]) -> float:
    job_id = _submit(home, env)
    _wait_state(home, env, job_id, "RUNNING")
    return _wait_state(home, env, job_id, "SUCCEEDED")


def _wait_state(home: Path, env: dict[str, str], job_id: int, state: str, timeout_s: float = 1800) -> float:
    """Seconds from its attempt's start until the job reaches `state` (polls `llmos jobs show`)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        show = json.loads(subprocess.run([LLMOS, "jobs", "show", str(job_id), "--json"], env=env, check=True,
                                         capture_output=True, text=True).stdout)
        if show["state"] == state:
            attempt = show["attempts"][-1]
            return (attempt.get("ended_s") or time.time()) - attempt["started_s"]
        if show["state"] in ("FAILED", "CANCELLED"):
            raise SystemExit(f"daemon job {job_id} {show['state']}: {show}")
        time.sleep(0.5)
    raise SystemExit(f"daemon job {job_id} did not reach {state}")


def _brief(report: dict) -> dict:
    return {k: report.get(k) for k in ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "ok", "errors")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=4, help="quickstart epochs (4: the quickstart itself)")
    parser.add_argument("--serve-concurrency", type=int, default=4)
    parser.add_argument("--serve-s", type=float, default=15.0, help="seconds of load per serving measurement")
    parser.add_argument("--train-load-s", type=float, default=10.0, help="wait this long into the training")
    parser.add_argument("--setups", default="old,new", help=f"comma-separated, of {', '.join(SETUPS)}")
    parser.add_argument("--pair-setups", default=None, help="set-ups to run two at once (default: --setups)")
    parser.add_argument("--skip-serving", action="store_true")
    parser.add_argument("--parts", default="alone,pairs,serving,daemon",
                        help="which phases to run, comma-separated (default: all; the floors need all)")
    parser.add_argument("--daemon-epochs", type=float, default=2,
                        help="epochs of the daemon phase's trainings (0: skip the phase)")
    args = parser.parse_args()
    setups = args.setups.split(",")
    pair_setups = args.pair_setups.split(",") if args.pair_setups is not None else setups
    unknown = [s for s in {*setups, *pair_setups} - {""} if s not in SETUPS]
    if unknown or "new" not in setups:
        raise SystemExit(f"--setups must include new and name only {', '.join(SETUPS)} (got {unknown or setups})")
    parts = set(args.parts.split(","))
    if args.skip_serving:
        parts.discard("serving")
    print(f"machine: {machine()}", flush=True)
    report: dict = {"machine": machine(), "args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # A first, uncounted run warms the file cache and registers the model the serving phase serves.
        model_home = Path(tempfile.mkdtemp(dir=root))
        print(f"warm-up (not counted): {finish(*start_training('new', model_home, args.epochs)):.1f} s", flush=True)
        first, pairs = {}, {}
        if "alone" in parts:
            print("alone:", flush=True)
            first = {s: alone(s, root, args.epochs) for s in setups}
        if "pairs" in parts:
            print("two at once:", flush=True)
            pairs = {s: pair(s, root, args.epochs) for s in pair_setups if s}
        served = {}
        if "serving" in parts:
            print("serving beside a training:", flush=True)
            served = {s: serving(s, model_home, root, args) for s in ("new", "old") if s in setups}
        daemon = {}
        if args.daemon_epochs and "daemon" in parts:
            print("a training started by hand while the daemon runs one:", flush=True)
            daemon = {s: daemon_phase(s, root, args.daemon_epochs) for s in ("new", "old") if s in setups}
        again = {}
        if "alone" in parts:
            print("alone again:", flush=True)
            again = {s: alone(s, root, args.epochs) for s in reversed(setups)}
    alone_s = {s: statistics.mean([first[s], again[s]]) for s in first}
    report.update(alone_s={s: [first[s], again[s]] for s in first}, pairs_s=pairs, serving=served, daemon=daemon)
    report["pair_slowdown"] = {s: max(walls) / alone_s[s] for s, walls in pairs.items() if s in alone_s}
    report["alone_speed_vs_old"] = {s: alone_s["old"] / alone_s[s] for s in alone_s if "old" in alone_s}
    floors = {}
    if "new" in report["pair_slowdown"]:
        floors["two at once <= 2.3x alone (new)"] = report["pair_slowdown"]["new"] <= 2.3
    if "new" in report["alone_speed_vs_old"]:
        floors["alone new >= 0.97x old"] = report["alone_speed_vs_old"]["new"] >= 0.97
    if "new" in served:
        floors["serving p95 beside training <= 2.5x alone (new)"] = served["new"]["p95_ratio"] <= 2.5
    report["floors"] = floors
    print("\nsummary:")
    for s in alone_s:
        print(f"  {s}: alone {alone_s[s]:.1f} s ({first[s]:.1f}, {again[s]:.1f})"
              + (f", {report['alone_speed_vs_old'][s]:.3f}x the speed of old" if s in report["alone_speed_vs_old"]
                 else ""))
    for s, slow in report["pair_slowdown"].items():
        print(f"  {s}: two at once {slow:.2f}x alone")
    for s in served:
        print(f"  {s}: serving p95 beside a training {served[s]['p95_ratio']:.2f}x alone")
    for s, d in daemon.items():
        print(f"  {s}: the daemon's job beside a hand-started training {d['job_slowdown']:.2f}x alone")
    for name, ok in floors.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "contention.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
