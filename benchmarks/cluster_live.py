"""Cluster mode on a real Ray cluster (issue 13, point 8, the live figures): a head and two worker
nodes with their own IP addresses (network namespaces on this machine, tests/cluster/_testcluster.py),
a real daemon started with `llmos up --ray`, real DDP.

    .venv/bin/python benchmarks/cluster_live.py [--rows 2000] [--repeats 3]

1. DDP samples/s: MiniLM-L6 on SST-2 rows, 2 workers of one thread each, 2 Ray workers on 2 nodes
   (through the daemon) vs 2 local processes (`llmos train resources.procs=2`: torchrun on this
   machine) - steady-state samples/s from each run's summary.json. Floor >= 0.9x.
2. submit -> first training step: the same small job submitted to a local daemon and to the Ray
   daemon, from the submit call to the "step 1/" line in the rank-0 log; median of --repeats.
   Floor: Ray <= local + 3 s.
3. node loss -> training resumed: the node holding rank 1 is killed (raylet and workers, SIGKILL)
   while a 2-node run trains; from the kill to the resumed attempt's first step, beside the age of
   the newest checkpoint at the kill. Ray's default health check (a node is dead after ~15 s of
   missed heartbeats) as a real cluster has it. Floor: <= 30 s + the checkpoint's age.

Both nodes live on one 2-core machine: Ray workers and local processes get the same cores, so the
ratios compare the executors, not the network. A JSON record goes to benchmarks/out/cluster_live.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import OUT, REPO, machine, sst2
from tests.cluster._testcluster import start_cluster

LLMOS = [sys.executable, "-m", "llmos.cli.main"]


def cli(home: Path, *args: str, timeout_s: float = 900) -> str:
    # Trusted: jobs run as the daemon's user, as on the Ray cluster (which does not isolate jobs yet);
    # a root daemon would otherwise run them as a project user who cannot read this benchmark's
    # private temporary folder.
    env = {**os.environ, "LLMOS_HOME": str(home), "LLMOS_ISOLATION": "trusted"}
    done = subprocess.run([*LLMOS, *args], env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise SystemExit(f"llmos {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def submit(home: Path, spec: Path, *overrides: str) -> int:
    return int(cli(home, "submit", str(spec), *overrides).split("submitted job ")[1].split()[0])


def job(home: Path, job_id: int) -> dict:
    return json.loads(cli(home, "jobs", "show", str(job_id), "--json"))


def wait(check, timeout_s: float = 1800, what: str = "", every_s: float = 0.05) -> None:
    """Poll `check` every `every_s`. A check that reads a file is cheap; one that runs the CLI starts
    a Python process (~0.5 s of a core), so it polls slowly: polled every 50 ms, it took most of a
    core from the training being measured (the Ray DDP figure read 0.6x of local that way)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every_s)


def wait_ended(home: Path, job_id: int, what: str) -> dict:
    """The job once it ended (polls the CLI every 2 s)."""
    seen: dict = {}

    def ended() -> bool:
        seen.update(job(home, job_id))
        return seen["state"] in ("SUCCEEDED", "FAILED", "CANCELLED")
    wait(ended, what=what, every_s=2.0)
    return seen


def sst2_rows(folder: Path, rows: int) -> tuple[Path, Path]:
    out = []
    for split, n in (("train", rows), ("dev", 200)):
        path = folder / f"{split}.csv"
        with open(sst2(split), newline="") as f, open(path, "w", newline="") as g:
            writer = csv.writer(g)
            writer.writerow(["text", "label"])  # the team's SST-2 files are sentence<TAB>label, no header
            for i, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)):
                if i >= n:
                    break
                writer.writerow(row)
        out.append(path)
    return out[0], out[1]


def spec(folder: Path, name: str, data: tuple[Path, Path], model: str, epochs: int, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nmodel: {{name: {model}, max_length: 64}}\n"
                    f"data: {{train: {data[0]}, eval: {data[1]}}}\n"
                    f"train: {{epochs: {epochs}, batch_size: 16, lr: 3.0e-5, log_every_steps: 1, num_threads: 1"
                    f"{extra}}}\n"
                    "checkpoint: {every_steps: 20}\ntracking: {enabled: false}\n"
                    "resources: {procs: 1, nodes: 2, cpus_per_proc: 1}\n")
    return path


def first_step_s(log: Path, since: float, timeout_s: float = 600) -> float:
    """Seconds from `since` (time.time()) until `log` holds a 'step 1/' line (or any 'step N/' line)."""
    def seen() -> bool:
        try:
            return "step " in log.read_text() and "/" in log.read_text().split("step ", 1)[1][:12]
        except OSError:
            return False
    wait(seen, timeout_s, f"a step line in {log}")
    return time.time() - since


def set_mtu(cluster, mtu: int) -> None:
    """Give the test cluster's links (each node's veth pair and the bridge) this MTU: loopback, which
    two local workers use, has 65,536; a veth pair starts at 1,500, so the same bytes cost the shared
    cores many more packets."""
    net = cluster._backend.net  # the namespaces' names and the bridge (tests/cluster/_netns.py)
    for name in cluster.nodes:
        namespace = net.namespace(name)
        subprocess.run(["ip", "link", "set", f"{namespace}-h", "mtu", str(mtu)], check=True)
        subprocess.run(["ip", "-n", namespace, "link", "set", "eth0", "mtu", str(mtu)], check=True)
    subprocess.run(["ip", "link", "set", net.bridge, "mtu", str(mtu)], check=True)


def ddp(cluster, ray_home: Path, work: Path, data: tuple[Path, Path], cpus_per_proc: int = 1) -> dict:
    local_run = work / "local-run"
    cli(work / "local-home", "train", str(spec(work, "ddp-local", data, "minilm-l6", 1)), f"output={local_run}",
        "resources.nodes=1", "resources.procs=2")
    local = json.loads((local_run / "summary.json").read_text())
    ray_id = submit(ray_home, spec(work, "ddp-ray", data, "minilm-l6", 1), f"resources.cpus_per_proc={cpus_per_proc}")
    ray_job = wait_ended(ray_home, ray_id, "the Ray DDP run")
    assert ray_job["state"] == "SUCCEEDED", ray_job
    on_ray = json.loads((Path(ray_job["run_dir"]) / "summary.json").read_text())
    key = "samples_per_s"
    return {"local_samples_per_s": local[key], "ray_samples_per_s": on_ray[key],
            "ratio": on_ray[key] / local[key], "nodes": ray_job["placement"].get("addresses")}


def born_s(path: Path) -> float | None:
    """When `path` was created (statx birth time), None where the file system does not keep it."""
    done = subprocess.run(["stat", "-c", "%.9W", str(path)], capture_output=True, text=True)
    born = float(done.stdout.strip() or 0) if done.returncode == 0 else 0.0
    return born or None


def start_latency(cluster, ray_home: Path, local_home: Path, work: Path, data: tuple[Path, Path],
                  repeats: int) -> dict:
    """submit -> first step, and where it goes: submit -> the executor's launch began (pid.json
    written) -> the program started (the attempt's output.log made) -> rank 0's log made by the
    program (llmos.run's first act) -> its first step line."""
    small = spec(work, "first-step", data, "tiny-bert", 1, ", max_steps: 3")
    out: dict[str, list[float]] = {"local": [], "ray": []}
    phases: dict[str, list[dict[str, float | None]]] = {"local": [], "ray": []}
    for _ in range(repeats):
        for where, home in (("local", local_home), ("ray", ray_home)):
            overrides = ["resources.nodes=1", "resources.procs=2"] if where == "local" else []
            t0 = time.time()
            job_id = submit(home, small, *overrides)
            jobs_root = (cluster.storage / "llmos" / "jobs") if where == "ray" else home / "control" / "jobs"
            attempt = jobs_root / str(job_id) / "attempt-1"
            try:
                out[where].append(first_step_s(attempt / "worker-0.log", t0, timeout_s=300))
            except SystemExit:
                raise SystemExit(f"no step line from the {where} job {job_id}: {job(home, job_id)}\n"
                                 f"daemon log: {(home / 'control' / 'daemon.log').read_text()[-3000:]}") from None
            marks = {"launch_began_s": born_s(attempt / "pid.json"),
                     "program_started_s": born_s(attempt / "output.log"),
                     "worker_log_made_s": born_s(attempt / "worker-0.log")}
            phases[where].append({k: (v - t0 if v else None) for k, v in marks.items()})
            wait_ended(home, job_id, "the small run")
    return {k: {"median_s": statistics.median(v), "all_s": v, "phases": phases[k]} for k, v in out.items()}


def node_loss(cluster, ray_home: Path, work: Path, data: tuple[Path, Path]) -> dict:
    job_id = submit(ray_home, spec(work, "lossy", data, "minilm-l6", 1))
    run_dir = None

    def has_run_dir() -> bool:
        nonlocal run_dir
        run_dir = job(ray_home, job_id).get("run_dir")
        return bool(run_dir)
    wait(has_run_dir, what="the run placed", every_s=1.0)
    wait(lambda: any((Path(run_dir) / "checkpoints").glob("step-*")), what="a first checkpoint")
    time.sleep(5)  # some steps past it
    placed = job(ray_home, job_id)["placement"]["nodes"]
    victim = next(name for name, node_id in cluster.node_ids().items() if node_id == placed[1])
    newest = max((Path(run_dir) / "checkpoints").glob("step-*"), key=lambda p: p.stat().st_mtime)
    t_kill = time.time()
    checkpoint_age_s = t_kill - newest.stat().st_mtime
    dead_after_s = cluster.kill_node(victim)
    try:
        resumed_s = None
        jobs_root = cluster.storage / "llmos" / "jobs" / str(job_id)

        def resumed() -> bool:
            nonlocal resumed_s
            for attempt in sorted(jobs_root.glob("attempt-*"))[1:]:
                log = attempt / "worker-0.log"
                if log.is_file() and "step " in log.read_text():
                    resumed_s = time.time() - t_kill
                    return True
            return False
        wait(resumed, what="the resumed attempt's first step")
        wait_ended(ray_home, job_id, "the resumed run")
    finally:
        cluster.start_node(victim)
    return {"resumed_after_kill_s": resumed_s, "node_dead_after_s": dead_after_s,
            "checkpoint_age_at_kill_s": checkpoint_age_s, "floor_s": 30 + checkpoint_age_s,
            "attempts": job(ray_home, job_id)["attempt"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="SST-2 training rows for the DDP runs")
    parser.add_argument("--repeats", type=int, default=3, help="submissions per executor for the start latency")
    parser.add_argument("--ray-cpus-per-proc", type=int, default=1,
                        help="CPUs (and OMP_NUM_THREADS) of each Ray DDP worker; 1 as torchrun gives local ones")
    parser.add_argument("--mtu", type=int, default=None,
                        help="set the test cluster's links to this MTU first (default: leave 1,500)")
    parser.add_argument("--parts", default="ddp,first_step,node_loss",
                        help="which measurements to run, comma-separated (default: all three)")
    args = parser.parse_args()
    # A SIGTERM (timeout, kill) unwinds like Ctrl-C, so the cluster and daemons below are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="llmos-cluster-bench-") as tmp:
        work = Path(tmp)
        (work / "storage").mkdir()
        cluster = start_cluster(["n1", "n2"], storage=work / "storage")  # Ray's default health checks
        ray_home, local_home = work / "ray-home", work / "local-home-daemon"
        try:
            data = sst2_rows(work / "storage", args.rows)
            cli(ray_home, "up", "--port", "0", "--ray", cluster.address, "--storage", str(work / "storage" / "llmos"))
            cli(local_home, "up", "--port", "0")
            parts = set(args.parts.split(","))
            if args.mtu and cluster.mode == "netns":
                set_mtu(cluster, args.mtu)
            record = {"machine": machine(), "cluster_mode": cluster.mode, "nodes": cluster.nodes, "mtu": args.mtu}
            if "ddp" in parts:
                record["ddp"] = ddp(cluster, ray_home, work, data, args.ray_cpus_per_proc)
            if "first_step" in parts:
                record["first_step"] = start_latency(cluster, ray_home, local_home, work, data, args.repeats)
            if "node_loss" in parts:
                record["node_loss"] = node_loss(cluster, ray_home, work, data)
        finally:
            for home in (ray_home, local_home):
                subprocess.run([*LLMOS, "down", "--timeout-s", "30"], env={**os.environ, "LLMOS_HOME": str(home)},
                               capture_output=True, timeout=120)
            cluster.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cluster_live.json").write_text(json.dumps(record, indent=2))
    print(f"machine: {record['machine']} ({record['cluster_mode']}: {record['nodes']})")
    if d := record.get("ddp"):
        print(f"DDP samples/s: 2 Ray workers on 2 nodes {d['ray_samples_per_s']:.1f}, 2 local processes "
              f"{d['local_samples_per_s']:.1f}: {d['ratio']:.2f}x (floor >= 0.9x)")
    if f := record.get("first_step"):
        print(f"submit -> first step: Ray {f['ray']['median_s']:.1f} s, local {f['local']['median_s']:.1f} s "
              f"(median of {len(f['ray']['all_s'])}; floor Ray <= local + 3 s)")
        for where in ("local", "ray"):
            for i, marks in enumerate(f[where]["phases"]):
                shown = ", ".join(f"{k[:-2].replace('_', ' ')} {v:.1f} s" if v is not None else f"{k[:-2]} ?"
                                  for k, v in marks.items())
                print(f"  {where} #{i + 1}: {shown}, first step {f[where]['all_s'][i]:.1f} s")
    if n := record.get("node_loss"):
        print(f"node loss -> resumed: {n['resumed_after_kill_s']:.1f} s "
              f"(node dead after {n['node_dead_after_s']:.1f} s; "
              f"newest checkpoint {n['checkpoint_age_at_kill_s']:.1f} s old; floor {n['floor_s']:.1f} s)")
    print(f"record: {(OUT / 'cluster_live.json').relative_to(REPO)}")


if __name__ == "__main__":
    main()
