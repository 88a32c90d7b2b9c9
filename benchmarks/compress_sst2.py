"""Compress MiniLM-L6 fine-tuned on SST-2 with every recipe, in one `llmos compress` run, then
serve the parent and every child with `llmos serve` and time them on the dev sentences.

1. fine-tune MiniLM-L6 on SST-2 train (1 epoch; `--train-limit` rows) and register it;
2. one compression job on it: int8 (torchao), onnx-int8 (ONNX Runtime), bf16, and, where their
   recipes exist, prune-structured with a recovery fine-tune and distill 6 → 3, with the gate
   `max_metric_drop=1.0,min_speedup=1.5` moving the alias `fast`;
3. every child measured against the fp32 parent in the same run: dev accuracy, the served figures
   the gate judges (p50 of one-text requests, throughput of requests of 32), the fixed-length
   figure beside them, size; printed as ratios next to the issue's targets;
4. the served column: the parent and every child as real `llmos serve` processes (default
   settings), all up at once, taking turns round after round: every dev sentence in requests of
   32, one request at a time, over HTTP; sentences/s and the accuracy of the served answers. The
   floor: the child the gate promoted serves >= 1.5x the parent's sentences/s at <= 1 pt drop.

    python benchmarks/compress_sst2.py            # full: all 6,920 training rows, all 872 dev rows
    python benchmarks/compress_sst2.py --quick    # a smoke run: 1,000 training rows, 300 dev rows
    python benchmarks/compress_sst2.py --quick --recipes onnx-int8,bf16 --rounds 1   # a shorter one

The dataset is found under $LLMOS_SHARED/datasets/sst2, by default the team's shared folder
beside this checkout (see _common.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine, sst2

# recipe label -> (what the issue asks, check on the comparison with the parent)
TARGETS = {
    "int8": ("throughput >= 2.0x, drop <= 0.5 pt, size <= 0.45x",
             lambda c: c["speedup"] >= 2.0 and c["metric_drop"] <= 0.5 and c["size_ratio"] <= 0.45),
    "onnx-int8": ("reported beside int8 (published anchors 1.8x to 2.3x)", None),
    "bf16": ("the baseline to beat", None),
    "prune-structured": ("p50 latency <= 0.6x, drop <= 1.0 pt",
                         lambda c: c["latency_ratio"] <= 0.6 and c["metric_drop"] <= 1.0),
    "distill": ("throughput >= 1.8x, drop <= 2.0 pt", lambda c: c["speedup"] >= 1.8 and c["metric_drop"] <= 2.0),
}
DATA = {"format": "tsv", "header": False, "text_column": "0", "label_column": "1"}
FLOOR_SPEEDUP, FLOOR_DROP_PT = 1.5, 1.0  # the promoted child, served, against the parent served
REQUEST_SIZE = 32  # sentences per request in the served column


def train_parent(args: argparse.Namespace, home: Path) -> float:
    from llmos.run import launch
    from llmos.spec import parse_job

    job = parse_job({
        "name": "bench-compress-parent", "output": str(home / "runs" / "parent"),
        "model": {"name": "minilm-l6", "max_length": 128},
        "data": {"train": str(sst2("train")), "eval": str(sst2("dev")), **DATA, "limit": args.train_limit},
        "train": {"epochs": 1, "batch_size": 32, "lr": 5e-5, "log_every_steps": 50},
        "checkpoint": {"every_steps": None},
        "tracking": {"system_metrics": False},
        "register": {"name": "sst2", "alias": "candidate"},
    })
    start = time.perf_counter()
    result = launch(job, fresh=True, env={"LLMOS_HOME": str(home)})
    if result.exit_code != 0:
        raise SystemExit(f"fine-tuning the parent failed (exit {result.exit_code})")
    return time.perf_counter() - start


def recipes(args: argparse.Namespace) -> list[str]:
    from llmos.compress import get_recipe
    from llmos.errors import SpecError

    chosen = ["int8", "onnx-int8", "bf16"]
    if args.recipes:
        return [r for r in args.recipes.split(",") if r]
    epochs = 0.3 if args.quick else 1
    # Settings from a trial on this data: heads 0.5 / FFN 0.6 is what brings batch-1 latency under
    # 0.6x (0.3 / 0.3 gives ~0.7x); one recovery epoch restores the accuracy; a 3-layer student
    # needs a second epoch to come within 2 points (-2.8 after one, -1.4 after two).
    for extra in (f"prune-structured:heads=0.5,ffn=0.6,recover_epochs={epochs}",
                  f"distill:layers=3,epochs={2 * epochs}"):
        try:
            get_recipe(extra.split(":")[0])
            chosen.append(extra)
        except SpecError:
            print(f"(skipping {extra}: recipe not available)")
    return chosen


def compress(args: argparse.Namespace, home: Path) -> dict:
    from llmos.compress import compress as run_compress
    from llmos.spec import parse_job

    job = parse_job({
        "kind": "compress", "model": "sst2@candidate", "recipe": recipes(args),
        "eval": str(sst2("dev")), "train": str(sst2("train")),
        "data": {**DATA, "eval_limit": args.eval_limit, "train_limit": args.train_limit, "calib_limit": 256},
        "output": str(home / "runs" / "compress"),
        "gate": {"max_metric_drop": FLOOR_DROP_PT, "min_speedup": FLOOR_SPEEDUP}, "alias": "fast",
        "report": {"batch_size": 32, "latency_runs": 20 if args.quick else 100,
                   "throughput_batches": 4 if args.quick else 15, "warmup": 2 if args.quick else 5},
        "tracking": {"system_metrics": False},
    })
    return run_compress(job, note=lambda text: print(f"  {text}", flush=True)).report


def dev_rows(limit: int | None) -> list[tuple[str, str]]:
    """(sentence, label) of SST-2 dev, in file order (the first `limit`, as the compression job reads)."""
    with sst2("dev").open(newline="", encoding="utf-8") as f:
        rows = [(row[0], row[1]) for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row]
    return rows[:limit] if limit else rows


class Server:
    """`python -m llmos.serve JOB.json` in its own process; `url` once /readyz answers 200."""

    def __init__(self, ref: str, home: Path, settings: dict) -> None:
        import httpx

        job = {"kind": "serve", "model": ref, "name": "bench", "server": {"port": 0, "api_key_env": None},
               "runtime": settings["runtime"], "batching": settings["batching"]}
        path = home / f"serve-{ref.replace('/', '-')}.json"
        path.write_text(json.dumps(job))
        self.proc = subprocess.Popen([sys.executable, "-m", "llmos.serve", str(path)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env={**os.environ, "LLMOS_HOME": str(home)})
        assert self.proc.stdout is not None
        self.url, self.ready_line = "", ""
        for line in self.proc.stdout:
            if match := re.search(r" on (http://\S+);", line):
                self.url = match[1]
            if line.startswith("ready in"):
                self.ready_line = line.strip()  # runtime, precision, packing, compiled: as served
                break
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        if not self.url or not self.ready_line or httpx.get(f"{self.url}/readyz", timeout=10).status_code != 200:
            raise SystemExit(f"llmos serve {ref} did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def one_pass(url: str, rows: list[tuple[str, str]]) -> tuple[float, float]:
    """Every sentence in requests of REQUEST_SIZE, one request at a time: (sentences/s, accuracy)."""
    import httpx

    right = 0
    with httpx.Client(timeout=120) as client:
        client.post(f"{url}/v1/classify", json={"input": [rows[0][0]]}).raise_for_status()  # the connection
        started = time.perf_counter()
        for i in range(0, len(rows), REQUEST_SIZE):
            chunk = rows[i:i + REQUEST_SIZE]
            answer = client.post(f"{url}/v1/classify", json={"input": [text for text, _ in chunk]})
            answer.raise_for_status()
            right += sum(d["label"] == label for d, (_, label) in zip(answer.json()["data"], chunk, strict=True))
        elapsed_s = time.perf_counter() - started
    return len(rows) / elapsed_s, right / len(rows)


def served_column(report: dict, home: Path, rows: list[tuple[str, str]], rounds: int) -> dict[str, dict]:
    """Parent and children through `llmos serve`, all up at once, taking turns for `rounds` rounds
    (this machine's speed drifts over minutes: neighbouring passes compare better than phases)."""
    name = report["registered_name"]
    refs = {"parent": report["parent"]["ref"],
            **{c["label"]: f"{name}/{c['registered']}" for c in report["children"]}}
    servers: dict[str, Server] = {}
    try:
        for label, ref in refs.items():
            print(f"  starting llmos serve {ref} ({label})", flush=True)
            servers[label] = Server(ref, home, report["settings"])
        passes: dict[str, list[tuple[float, float]]] = {label: [] for label in servers}
        for r in range(rounds):
            for label, server in servers.items():
                passes[label].append(one_pass(server.url, rows))
                print(f"  round {r + 1}/{rounds} {label}: {passes[label][-1][0]:.1f} sentences/s", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return {label: {"ref": refs[label], "served_as": servers[label].ready_line,
                    "sentences_per_s": statistics.median(p[0] for p in runs),
                    "passes_per_s": [round(p[0], 1) for p in runs], "accuracy": runs[0][1]}
            for label, runs in passes.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer rows and timing runs")
    parser.add_argument("--train-limit", type=int, default=None, help="training rows used (default: all)")
    parser.add_argument("--eval-limit", type=int, default=None, help="dev rows used (default: all 872)")
    parser.add_argument("--recipes", default=None, help="comma-separated recipes (default: every one)")
    parser.add_argument("--rounds", type=int, default=3, help="served passes over the dev rows per model")
    args = parser.parse_args()
    if args.quick:
        args.train_limit = args.train_limit or 1000
        args.eval_limit = args.eval_limit or 300
    with tempfile.TemporaryDirectory(prefix="llmos-bench-compress-") as tmp:
        home = Path(tmp)
        os.environ["LLMOS_HOME"] = str(home)
        started = time.perf_counter()
        train_s = train_parent(args, home)
        print(f"parent fine-tuned and registered in {train_s:.0f} s", flush=True)
        report = compress(args, home)
        print("served column: every model through llmos serve", flush=True)
        served = served_column(report, home, dev_rows(args.eval_limit), args.rounds)
        total_s = time.perf_counter() - started
    rows = summarize(report, served)
    settings = report["settings"]
    print(f"\n{machine()}; {report['machine']['cpu']}; {'quick' if args.quick else 'full'} run, {total_s:.0f} s in all")
    parent, parent_served = report["parent"]["measured"], served["parent"]
    print(f"parent fp32: accuracy {parent['metrics']['accuracy'] * 100:.2f}%; report (served in-process): p50 "
          f"{parent['latency_p50_ms']:.1f} ms, {parent['throughput']:.1f} ex/s in requests of "
          f"{settings['batch_size']}; "
          f"fixed length {parent['fixed_length']['throughput']:.1f} ex/s at {settings['batch_size']} x "
          f"{settings['seq_len']}; llmos serve {parent_served['sentences_per_s']:.1f} sentences/s, accuracy "
          f"{parent_served['accuracy'] * 100:.2f}%; {parent['size_mb']:.1f} MB")
    print(f"{'recipe':44s} {'acc Δpt':>8s} {'p50 ×':>7s} {'thr ×':>7s} {'fixed ×':>8s} {'serve ×':>8s} "
          f"{'srv Δpt':>8s} {'size ×':>7s} gate  target")
    for row in rows:
        print(f"{row['label']:44s} {-row['metric_drop']:+8.2f} {row['latency_ratio']:7.2f} {row['speedup']:7.2f} "
              f"{row['fixed_length_speedup']:8.2f} {row['llmos_serve_speedup']:8.2f} {-row['served_drop_pt']:+8.2f} "
              f"{row['size_ratio']:7.2f} {'pass' if row['gate_passed'] else 'fail'}  "
              f"{row['target']}{'' if row['met'] is None else ' -> ' + str(row['met'])}")
    for label, column in served.items():
        print(f"  {label}: {column['served_as']}")
    for row in rows:
        if row["vs_parent_compiled"]:
            c = row["vs_parent_compiled"]
            print(f"{row['label']} against the fp32 parent compiled the same way (fixed length): p50 "
                  f"{c['latency_ratio']:.2f}x, throughput {c['speedup']:.2f}x")
    floor = promoted_floor(report, rows)
    print(floor["line"])
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / ("compress_sst2_quick.json" if args.quick else "compress_sst2.json")
    out.write_text(json.dumps({"machine": machine(), "args": vars(args), "total_s": total_s, "train_s": train_s,
                               "rows": rows, "served": served, "floor": floor, "report": report}, indent=2))
    print(f"written {out}")


def promoted_floor(report: dict, rows: list[dict]) -> dict:
    """The child the gate promoted, through llmos serve: >= 1.5x the parent's sentences/s at <= 1 pt."""
    version = report["alias"]["version"]
    promoted = next((r for r in rows if r["registered"] == version), None)
    if promoted is None:
        return {"promoted": None, "met": None, "line": "floor: no child passed the gate (fast was not moved)"}
    met = promoted["llmos_serve_speedup"] >= FLOOR_SPEEDUP and promoted["served_drop_pt"] <= FLOOR_DROP_PT
    return {"promoted": promoted["label"], "met": met,
            "line": f"floor: the promoted child {promoted['label']} serves {promoted['llmos_serve_speedup']:.2f}x the "
                    f"parent's sentences/s (>= {FLOOR_SPEEDUP}) at {promoted['served_drop_pt']:+.2f} pt drop "
                    f"(<= {FLOOR_DROP_PT}) -> {'met' if met else 'NOT met'}"}


def summarize(report: dict, served: dict[str, dict]) -> list[dict]:
    rows = []
    parent = served["parent"]
    for child in report["children"]:
        target, check = TARGETS.get(child["recipe"], ("", None))
        vs, column = child["vs_parent"], served[child["label"]]
        rows.append({"label": child["label"], "registered": child["registered"], **vs,
                     "accuracy": child["measured"]["metrics"]["accuracy"],
                     "compiled": child["measured"]["fixed_length"]["compiled"], "target": target,
                     "met": None if check is None else bool(check(vs)), "gate_passed": child["gate"]["passed"],
                     "fixed_length_speedup": child["vs_parent_fixed_length"]["speedup"],
                     "llmos_serve_speedup": column["sentences_per_s"] / parent["sentences_per_s"],
                     "served_drop_pt": (parent["accuracy"] - column["accuracy"]) * 100,
                     # against the parent compiled the same way: the gain of quantizing alone
                     "vs_parent_compiled": child.get("vs_parent_compiled")})
    return rows


if __name__ == "__main__":
    main()
