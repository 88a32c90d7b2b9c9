"""Control-plane benchmark: submit-to-running latency, draining 1,000 queued jobs, and `jobs` listing.

    .venv/bin/python benchmarks/control_plane.py [--quick] [--cpus 2]

Starts a real daemon (`llmos up`) in a scratch LLMOS_HOME and drives it over its REST API with
the Python client. A "trivial job" is `kind: command` running `true` under the executor's
supervisor (a real process, pinned to its core).

1. submit -> RUNNING latency of one trivial job at a time on an idle machine (p50, p95), from the
   stored transition times.
2. 1,000 trivial jobs queued (while the daemon is down), then `llmos up`: drain time, and the
   idle gaps of every core while work waited (from an attempt's recorded end to the next start on
   that core). The goal: no gap longer than one scheduling interval (0.5 s).
3. `GET /v1/jobs` (a page of 100, and all 10,000) with 10,000 jobs in the store: requests/s.
A JSON record goes to benchmarks/out/control_plane.json (git-ignored).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "out"
TRIVIAL = {"kind": "command", "name": "trivial", "run": ["true"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs: a smoke run of about a minute")
    parser.add_argument("--cpus", type=int, default=2, help="cores the control plane schedules")
    args = parser.parse_args()
    n_latency, n_drain, n_store = (20, 200, 10_000) if args.quick else (100, 1000, 10_000)

    os.environ["LLMOS_HOME"] = tempfile.mkdtemp(prefix="llmos-bench-")
    from llmos.control import Client, ControlConfig, down, up

    config = ControlConfig(port=0, cpus=args.cpus)
    up(config)
    record: dict = {"cpus": args.cpus, "interval_s": config.interval_s, "quick": args.quick}
    try:
        with Client.local() as client:
            record["latency"] = latency(client, n_latency)
        record["drain"] = drain(n_drain, config)
        with Client.local() as client:
            record["listing"] = listing(client, n_store)
    finally:
        down()
        shutil.rmtree(os.environ["LLMOS_HOME"], ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "control_plane.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


def _running_latency_s(job: dict) -> float:
    queued = next(t["at_s"] for t in job["transitions"] if t["to"] == "QUEUED")
    running = next(t["at_s"] for t in job["transitions"] if t["to"] == "RUNNING")
    return running - queued


def latency(client, n: int) -> dict:
    samples = []
    for _ in range(n):
        job_id = client.submit(TRIVIAL)["id"]
        while (job := client.job(job_id))["state"] not in ("SUCCEEDED", "FAILED"):
            time.sleep(0.01)
        samples.append(_running_latency_s(job))
    samples.sort()
    result = {"jobs": n, "p50_ms": 1000 * statistics.median(samples),
              "p95_ms": 1000 * samples[int(0.95 * (n - 1))], "max_ms": 1000 * samples[-1]}
    print(f"submit -> RUNNING: p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms ({n} jobs)")
    return result


def drain(n: int, config) -> dict:
    """Queue `n` jobs while the daemon is down, start it, and time the drain."""
    from llmos.control import Client, down, up
    from llmos.control._auth import Caller
    from llmos.control._db import open_db
    from llmos.control._inventory import detect
    from llmos.control._service import Service

    down()
    engine = open_db(config.db)
    service = Service(engine, detect(config), config)
    ids = [service.submit(Caller("admin", "admin", "benchmark"), TRIVIAL)["id"] for _ in range(n)]
    engine.dispose()
    began = time.time()
    up(config)
    with Client.local() as client:
        while client.jobs(state="QUEUED,STARTING,RUNNING", limit=1):
            time.sleep(0.2)
        jobs = [client.job(i) for i in ids]
    by_core: dict[int, list[tuple[float, float]]] = {}
    for j in jobs:
        for a in j["attempts"]:
            for core in a["placement"]["workers"][0]["cores"]:
                by_core.setdefault(core, []).append((a["started_s"], a["ended_s"]))
    first = min(a[0] for runs in by_core.values() for a in runs)
    last = max(a[1] for runs in by_core.values() for a in runs)
    gaps = []
    for runs in by_core.values():
        runs.sort()
        # Every job was queued before the daemon started: work waited through every gap.
        gaps += [start - end for (_, end), (start, _) in itertools.pairwise(runs)]
    gaps.sort()
    failed = sum(j["state"] != "SUCCEEDED" for j in jobs)
    result = {"jobs": n, "failed": failed, "daemon_start_to_first_job_s": first - began, "drain_s": last - first,
              "jobs_per_s": n / (last - first), "gaps": len(gaps), "gap_p50_ms": 1000 * statistics.median(gaps),
              "gap_p99_ms": 1000 * gaps[int(0.99 * (len(gaps) - 1))], "gap_max_ms": 1000 * gaps[-1],
              "gaps_over_interval": sum(g > config.interval_s for g in gaps), "interval_s": config.interval_s}
    print(f"drain {n} queued jobs: {result['drain_s']:.1f} s ({result['jobs_per_s']:.1f} jobs/s, {failed} failed); "
          f"idle gap of a core while work waited p50 {result['gap_p50_ms']:.0f} ms, p99 {result['gap_p99_ms']:.0f} ms, "
          f"max {result['gap_max_ms']:.0f} ms; {result['gaps_over_interval']} gaps over {config.interval_s} s")
    return result


def listing(client, n_store: int) -> dict:
    _fill(n_store)
    stored = len(client.jobs(limit=10_000))
    page = _rate(lambda: client.jobs(limit=100), seconds=5.0)
    threads = 4
    rates: list[float] = []

    def worker() -> None:
        from llmos.control import Client

        with Client.local() as own:
            rates.append(_rate(lambda: own.jobs(limit=100), seconds=5.0))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    began = time.perf_counter()
    everything = client.jobs(limit=10_000)
    full_s = time.perf_counter() - began
    result = {"jobs_in_store": stored, "page100_req_per_s": page, f"page100_req_per_s_{threads}_clients": sum(rates),
              "all_10000_s": full_s, "all_rows": len(everything)}
    print(f"GET /v1/jobs with {stored} jobs stored: {page:.0f} req/s (one client, page of 100), "
          f"{sum(rates):.0f} req/s ({threads} clients); all {len(everything)} jobs in {full_s * 1000:.0f} ms")
    return result


def _fill(n_store: int) -> None:
    """Historic finished jobs, inserted directly (benchmark data: they never ran)."""
    from sqlalchemy import func, insert, select

    from llmos.control._db import open_db, write
    from llmos.control._schema import jobs

    engine = open_db()
    with write(engine) as conn:
        have = conn.execute(select(func.count()).select_from(jobs)).scalar_one()
        now = time.time()
        rows = [{"name": f"old-{i}", "kind": "command", "owner": "admin", "project": "admin", "priority": 1,
                 "state": "SUCCEEDED", "spec": json.dumps(TRIVIAL), "workers": 1, "cpus": 1.0, "memory_gb": 0.0,
                 "gpus": 0, "max_retries": 2, "attempt": 1, "failures": 0, "submit_s": now, "updated_s": now,
                 "not_before_s": 0.0, "holds": False, "reason": "attempt 1 finished"} for i in range(n_store - have)]
        if rows:
            conn.execute(insert(jobs), rows)
    engine.dispose()


def _rate(call, seconds: float) -> float:
    n, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        call()
        n += 1
    return n / (time.perf_counter() - began)


if __name__ == "__main__":
    sys.exit(main())
