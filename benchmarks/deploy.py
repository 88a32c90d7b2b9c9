"""Deployment benchmark: real `llmos serve` replicas of a tiny registered classifier behind the
front router, driven by a client load, on this machine.

    .venv/bin/python benchmarks/deploy.py [--quick]

Every figure is a ratio against a baseline measured in the same run:
1. front-router overhead: p50/p95 latency of one client at a time (`llmos bench serve
   --concurrency 1`, its own process) through the front address vs straight to one replica;
2. throughput of 8 concurrent clients through the front (2 replicas, least-outstanding routing)
   vs straight to one replica (skipped with --quick);
3. a replica SIGKILLed under load: failed requests (must be 0) and the time until the deployment
   is back to 2 ready replicas, relative to a replica's cold start;
4. a rolling update to a new version under load: failed requests (must be 0) and the roll time
   relative to a cold start.
A JSON record goes to benchmarks/out/deploy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "out"
BODY = {"input": ["a moving and delightful film", "dull"]}


def register_tiny(home: Path, labels: list[str], alias: str | None) -> str:
    import torch

    from llmos.models import build, save_trained
    from llmos.registry import register_model
    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    torch.manual_seed(0)
    built = build("tiny-bert", "classification", label_names=labels)
    folder = save_trained(built.model, built.tokenizer, home / "work" / "-".join(labels), task="classification",
                          base="tiny-bert", label_names=labels, max_length=32)
    tracker = start_run(TrackingSpec(system_metrics=False), run_name="tiny", job={}, tags={})
    artifact = tracker.log_model_dir(folder)
    tracker.finish()
    return register_model(name="tiny", run_id=tracker.run_id, artifact_uri=artifact, alias=alias, tags={})


class Load:
    """`clients` threads posting BODY to `url` back to back; counts status codes."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.codes, self._stop = url, Counter(), threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    code: int | str = client.post(self.url, json=BODY).status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                self.codes[code] += 1

    def __enter__(self) -> Load:
        self.started = time.perf_counter()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        self.wall_s = time.perf_counter() - self.started

    @property
    def failed(self) -> int:
        return sum(n for code, n in self.codes.items() if code != 200)


def bench(ctrl, url: str, concurrency: int, duration_s: float) -> dict:
    """`llmos bench serve` in its own process (the front router has its own; a load generator in
    this one would slow the controller's ticks), while this process keeps ticking the controller."""
    cmd = [sys.executable, "-m", "llmos.cli.main", "bench", "serve", url, "--concurrency", str(concurrency),
           "--duration", f"{duration_s}s", "--warmup", "1s", "--json", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        ctrl.tick(time.monotonic())
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"llmos bench serve failed:\n{out}\n{err}")
    return json.loads(out[out.index("{"):])  # the report is the JSON document on stdout


def wait(ctrl, condition, timeout_s: float) -> float:
    start = time.perf_counter()
    while not condition(ctrl.status()):
        if time.perf_counter() - start > timeout_s:
            raise SystemExit(f"timed out after {timeout_s} s; status: {ctrl.status().to_dict()}")
        ctrl.tick(time.monotonic())
        time.sleep(0.05)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, shorter loads, no throughput run")
    args = parser.parse_args()
    load_s = 3.0 if args.quick else 10.0

    home = Path(tempfile.mkdtemp(prefix="llmos-bench-deploy-"))
    os.environ["LLMOS_HOME"] = str(home)
    os.environ.pop("LLMOS_TRACKING_URI", None)
    from llmos.deploy import DeploymentController
    from llmos.registry import set_alias
    from llmos.spec import ServeJob

    register_tiny(home, ["negative", "positive"], alias="prod")
    register_tiny(home, ["bad", "good"], alias=None)
    job = ServeJob.model_validate({"kind": "serve", "name": "tiny", "model": "tiny@prod",
                                   "replicas": {"min": 2, "max": 2}, "batching": {"max_wait_ms": 1}})
    ctrl = DeploymentController("tiny", job, state_dir=home / "deploy", front_port=0)
    record: dict = {"quick": args.quick, "cpus": os.cpu_count()}
    ctrl.start()
    try:
        record["cold_start_s"] = cold = wait(ctrl, lambda s: s.ready == 2, 300)
        front_base = ctrl.status().front_url
        direct_base = f"http://127.0.0.1:{ctrl.status().replicas[0].port}"
        front = front_base + "/v1/classify"
        record["direct"], record["front"] = bench(ctrl, direct_base, 1, load_s), bench(ctrl, front_base, 1, load_s)
        record["overhead_p50_ratio"] = record["front"]["p50_ms"] / record["direct"]["p50_ms"]
        if not args.quick:
            one, two = bench(ctrl, direct_base, 8, load_s), bench(ctrl, front_base, 8, load_s)
            record["rps_one_direct"], record["rps_two_front"] = one["throughput_rps"], two["throughput_rps"]
            record["throughput_ratio"] = record["rps_two_front"] / record["rps_one_direct"]
        with Load(front, 4) as killed:
            time.sleep(0.5)
            victim = ctrl.status().replicas[0]
            os.kill(victim.pid, signal.SIGKILL)
            back = wait(ctrl, lambda s: s.ready == 2 and victim.replica_id not in {r.replica_id for r in s.replicas},
                        300)
        record["kill"] = {"requests": sum(killed.codes.values()), "failed": killed.failed,
                          "recovery_s": back, "recovery_over_cold_start": back / cold}
        set_alias("tiny", "2", "prod")
        with Load(front, 4) as rolled:
            ctrl.roll(job)
            took = wait(ctrl, lambda s: s.rollout is not None and s.rollout.state == "done", 600)
        record["roll"] = {"requests": sum(rolled.codes.values()), "failed": rolled.failed, "roll_s": took,
                          "roll_over_cold_start": took / cold, "version": ctrl.status().model_version}
    finally:
        ctrl.stop(drain_timeout_s=10)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "deploy.json").write_text(json.dumps(record, indent=2))
    _report(record)


def _report(r: dict) -> None:
    print(f"replica cold start (2 in parallel): {r['cold_start_s']:.1f} s")
    d = r["direct"]
    print(f"latency, one client: direct p50 {d['p50_ms']:.2f} ms p95 {d['p95_ms']:.2f} ms;"
          f" through the front p50 {r['front']['p50_ms']:.2f} ms p95 {r['front']['p95_ms']:.2f} ms"
          f" -> front/direct p50 {r['overhead_p50_ratio']:.2f}x")
    if "throughput_ratio" in r:
        print(f"8 clients: 1 replica direct {r['rps_one_direct']:.0f} req/s, 2 replicas via front "
              f"{r['rps_two_front']:.0f} req/s -> {r['throughput_ratio']:.2f}x (on {r['cpus']} cores)")
    k, ro = r["kill"], r["roll"]
    print(f"SIGKILL of a replica under load: {k['failed']} failed of {k['requests']}; back to 2 ready in "
          f"{k['recovery_s']:.1f} s ({k['recovery_over_cold_start']:.2f}x a cold start)")
    print(f"rolling update to {ro['version']} under load: {ro['failed']} failed of {ro['requests']}; "
          f"{ro['roll_s']:.1f} s ({ro['roll_over_cold_start']:.2f}x a cold start)")
    ok = k["failed"] == 0 and ro["failed"] == 0
    print("PASS: no failed request" if ok else "FAIL: requests failed")


if __name__ == "__main__":
    main()
