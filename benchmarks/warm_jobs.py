"""Control-plane jobs forked from a warm server (the default) against a new Python per job
(LLMOS_WARM_START=off), in the same run.

For each setting, a real daemon (`llmos up`, 2 cores, isolation trusted) in a scratch LLMOS_HOME
runs `--jobs` small training jobs one after another (the quickstart's job on tiny-bert, `--steps`
steps, eval, save, MLflow tracking), each submitted when the one before it has ended. Measured per
job: submit to SUCCEEDED (wall), and the CPU time the whole machine spent meanwhile (every process:
the job, its supervisor, the daemon, the fork server). The first job of the warm daemon starts
the fork server and itself runs as a new process: it is reported apart.

With `--foreground`, the same jobs run as `llmos train SPEC` commands in the foreground, one after
another (no daemon), in the same environment. A foreground command starts a server only on its
second run, so the first two warm runs are new processes too; the median is over the runs that
found the server listening.

With `--procs 2`, each job is a gang of two workers under torchrun (one core each): torchrun itself
is a new Python either way, and each worker it starts forks its program from the server once one
listens (`llmos._forkserver.worker_attach`); runs that found no server listening are new processes
and reported apart, as above.

    .venv/bin/python benchmarks/warm_jobs.py [--jobs 6] [--steps 4] [--foreground] [--procs 2]

A JSON record goes to benchmarks/out/warm_jobs.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine


def busy_s() -> float:
    """CPU seconds every core of this machine has spent busy since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def job_spec(warm: str, i: int, steps: int, procs: int, home: Path) -> dict:
    from llmos.quickstart import quickstart_job

    spec = json.loads(quickstart_job(model="tiny-bert", max_steps=steps).model_dump_json(by_alias=True))
    spec.update({"name": f"tiny-{warm}-{i}", "output": str(home / "runs" / f"tiny-{i}")})
    if procs > 1:
        spec["resources"] = {**(spec.get("resources") or {}), "procs": procs,
                             "cpus_per_proc": max(1, (os.cpu_count() or 2) // procs)}
    return spec


def _listening() -> bool:
    return any((Path(os.environ["LLMOS_RUNTIME_DIR"]) / f"llmos-warm-{os.getuid()}").glob("*.sock"))


def run_jobs(warm: str, n: int, steps: int, procs: int) -> list[dict]:

    home = tempfile.mkdtemp(prefix="llmos-warm-jobs-")
    os.environ.update({"LLMOS_HOME": home, "LLMOS_WARM_START": warm, "LLMOS_ISOLATION": "trusted"})
    from llmos.control import Client, ControlConfig, down, up

    up(ControlConfig(port=0, cpus=2))
    results = []
    try:
        with Client.local() as client:
            for i in range(n):
                spec = job_spec(warm, i, steps, procs, Path(home))
                listening = warm == "on" and _listening()
                cpu0, t0 = busy_s(), time.perf_counter()
                job_id = client.submit(spec)["id"]
                while (job := client.job(job_id))["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED"):
                    time.sleep(0.05)
                wall, cpu = time.perf_counter() - t0, busy_s() - cpu0
                if job["state"] != "SUCCEEDED":
                    raise SystemExit(f"job {job_id} {job['state']}: {job.get('reason')}")
                # A gang runs torchrun as a new process, its workers' programs forked where a server listened.
                started_warm = listening if procs > 1 else any("started warm" in t["reason"]
                                                               for t in job["transitions"])
                results.append({"wall_s": wall, "cpu_s": cpu, "warm": started_warm})
                print(f"LLMOS_WARM_START={warm:3} job {i + 1}: {wall:5.1f} s, {cpu:5.1f} CPU s"
                      f"{' (started warm)' if started_warm else ''}", flush=True)
    finally:
        down()
        shutil.rmtree(home, ignore_errors=True)
    return results


def run_foreground(warm: str, n: int, steps: int, procs: int) -> list[dict]:
    import subprocess

    home = Path(tempfile.mkdtemp(prefix="llmos-warm-fg-"))
    env = {**os.environ, "LLMOS_HOME": str(home), "LLMOS_WARM_START": warm}
    results = []
    try:
        for i in range(n):
            path = home / f"job-{i}.json"
            path.write_text(json.dumps(job_spec(warm, i, steps, procs, home)))
            listening = _listening()
            cpu0, t0 = busy_s(), time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "llmos.cli.main", "train", str(path)], env=env,
                                  capture_output=True, text=True)
            wall, cpu = time.perf_counter() - t0, busy_s() - cpu0
            if done.returncode != 0:
                raise SystemExit(f"llmos train exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
            results.append({"wall_s": wall, "cpu_s": cpu, "warm": warm == "on" and listening})
            print(f"LLMOS_WARM_START={warm:3} llmos train {i + 1}: {wall:5.1f} s, {cpu:5.1f} CPU s"
                  f"{' (server listening)' if results[-1]['warm'] else ''}", flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--foreground", action="store_true", help="llmos train in the foreground, no daemon")
    parser.add_argument("--procs", type=int, default=1, help="workers per job (torchrun above 1)")
    args = parser.parse_args()
    run = run_foreground if args.foreground else run_jobs
    runtime = tempfile.mkdtemp(prefix="lw-")  # this run's own fork servers, none left from before
    os.environ["LLMOS_RUNTIME_DIR"] = runtime
    try:
        off = run("off", args.jobs, args.steps, args.procs)
        on = run("on", args.jobs, args.steps, args.procs)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)  # the server sees its socket go and ends
    steady_on = [r for r in on if r["warm"]]
    med = {name: {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "cpu_s")}
           for name, rows in (("off", off[1:]), ("on", steady_on))}
    totals = {name: {k: sum(r[k] for r in rows) for k in ("wall_s", "cpu_s")} for name, rows in (("off", off),
                                                                                                ("on", on))}
    print(f"\nmachine: {machine()}")
    where = "as `llmos train` in the foreground" if args.foreground else "under a daemon"
    gang = f", {args.procs} workers each" if args.procs > 1 else ""
    print(f"{args.jobs} tiny-bert training jobs ({args.steps} steps, eval, save, tracking{gang}) one after another "
          f"{where} on 2 cores:")
    print("| | per job, wall (median) | per job, CPU (median) | all jobs, wall | all jobs, CPU |")
    print("|---|---:|---:|---:|---:|")
    print(f"| a new Python per job (LLMOS_WARM_START=off) | {med['off']['wall_s']:.1f} s | {med['off']['cpu_s']:.1f} s "
          f"| {totals['off']['wall_s']:.1f} s | {totals['off']['cpu_s']:.1f} s |")
    print(f"| forked from the fork server (default) | {med['on']['wall_s']:.1f} s | {med['on']['cpu_s']:.1f} s "
          f"| {totals['on']['wall_s']:.1f} s | {totals['on']['cpu_s']:.1f} s |")
    ratios = [med["on"][k] / med["off"][k] for k in ("wall_s", "cpu_s")]
    ratios += [totals["on"][k] / totals["off"][k] for k in ("wall_s", "cpu_s")]
    print("| **ratio** | " + " | ".join(f"**{r:.2f}x**" for r in ratios) + " |")
    cold = [r for r in on if not r["warm"]]
    print("warm setting, runs before the server listened (new processes; one starts the server): "
          + ", ".join(f"{r['wall_s']:.1f} s / {r['cpu_s']:.1f} CPU s" for r in cold)
          + f"; {len(steady_on)} of {args.jobs} started warm")
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"warm_jobs{'_foreground' if args.foreground else ''}{f'_procs{args.procs}' if args.procs > 1 else ''}.json"
    (OUT / name).write_text(json.dumps({"machine": machine(), "jobs": args.jobs, "steps": args.steps,
                                        "procs": args.procs, "off": off, "on": on, "median": med, "totals": totals},
                                       indent=2))


if __name__ == "__main__":
    main()
