"""Compress MiniLM-L6 fine-tuned on SST-2 with every recipe, in one `llmos compress` run.

1. fine-tune MiniLM-L6 on SST-2 train (1 epoch; `--train-limit` rows) and register it;
2. one compression job on it: int8 (torchao, measured compiled), onnx-int8 (ONNX Runtime), bf16,
   and, where their recipes exist, prune-structured with a recovery fine-tune and distill 6 → 3;
3. every child measured against the fp32 parent in the same run (dev accuracy, p50 latency at
   batch 1, throughput at batch 32, size), printed as ratios next to the issue's targets.

    python benchmarks/compress_sst2.py            # full: all 6,920 training rows, all 872 dev rows
    python benchmarks/compress_sst2.py --quick    # a smoke run: 1,000 training rows, 300 dev rows
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
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
        "report": {"batch_size": 32, "latency_runs": 20 if args.quick else 100,
                   "throughput_batches": 4 if args.quick else 15, "warmup": 2 if args.quick else 5},
        "tracking": {"system_metrics": False},
    })
    return run_compress(job, note=lambda text: print(f"  {text}", flush=True)).report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer rows and timing runs")
    parser.add_argument("--train-limit", type=int, default=None, help="training rows used (default: all)")
    parser.add_argument("--eval-limit", type=int, default=None, help="dev rows used (default: all 872)")
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
        total_s = time.perf_counter() - started
    rows = summarize(report)
    print(f"\n{machine()}; {report['machine']['cpu']}; seq_len {report['settings']['seq_len']}; "
          f"{'quick' if args.quick else 'full'} run, {total_s:.0f} s in all")
    parent = report["parent"]["measured"]
    print(f"parent fp32: accuracy {parent['metrics']['accuracy'] * 100:.2f}%, p50 {parent['latency_p50_ms']:.1f} ms, "
          f"{parent['throughput']:.1f} ex/s at batch 32, {parent['size_mb']:.1f} MB")
    print(f"{'recipe':44s} {'acc Δpt':>8s} {'p50 ×':>7s} {'thr ×':>7s} {'size ×':>7s}  target")
    for row in rows:
        print(f"{row['label']:44s} {-row['metric_drop']:+8.2f} {row['latency_ratio']:7.2f} {row['speedup']:7.2f} "
              f"{row['size_ratio']:7.2f}  {row['target']}{'' if row['met'] is None else ' -> ' + str(row['met'])}")
    for row in rows:
        if row["vs_parent_compiled"]:
            c = row["vs_parent_compiled"]
            print(f"{row['label']} against the fp32 parent compiled the same way: p50 {c['latency_ratio']:.2f}x, "
                  f"throughput {c['speedup']:.2f}x")
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / ("compress_sst2_quick.json" if args.quick else "compress_sst2.json")
    out.write_text(json.dumps({"machine": machine(), "args": vars(args), "total_s": total_s, "train_s": train_s,
                               "rows": rows, "report": report}, indent=2))
    print(f"written {out}")


def summarize(report: dict) -> list[dict]:
    rows = []
    for child in report["children"]:
        target, check = TARGETS.get(child["recipe"], ("", None))
        vs = child["vs_parent"]
        rows.append({"label": child["label"], **vs, "accuracy": child["measured"]["metrics"]["accuracy"],
                     "compiled": child["measured"]["compiled"], "target": target,
                     "met": None if check is None else bool(check(vs)),
                     # against the parent compiled the same way: the gain of quantizing alone
                     "vs_parent_compiled": child.get("vs_parent_compiled")})
    return rows


if __name__ == "__main__":
    main()
