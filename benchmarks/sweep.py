"""Does pruning pay? A 16-trial sweep with pruning against 16 unpruned trials (issue 16.2).

MiniLM-L6 fine-tuned on a subset of SST-2 train, evaluated on a subset of SST-2 dev every
`--eval-every` steps; the same search space and sampler seed (TPE) for both sweeps, one trial at
a time (`max_parallel: 1`: the machine has 2 cores, and one trial at a time makes step counts and
seconds comparable). Both run through `llmos.sweep.run_sweep`, the foreground driver of `llmos
sweep run`: real trial subprocesses, the real eval.jsonl the pruner reads, real SIGTERM stops.

Compute is counted in training steps (optimizer steps, each of the same batch size) and also shown
in trial seconds. The figure: the pruned sweep's compute up to the first trial that reaches the
best dev accuracy of the unpruned sweep, divided by the unpruned sweep's total compute; floor 0.5x.

    flock /tmp/llmos-bench.lock python benchmarks/sweep.py            # 16 + 16 trials (~20 min on 2 cores)
    python benchmarks/sweep.py --trials 3 --steps 20                   # a smoke run
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

FLOOR = 0.5


def subset(src: Path, dst: Path, n: int) -> Path:
    """The first n lines with both labels, as a headerless TSV (text, label)."""
    lines = [line for line in src.read_text().splitlines() if line.strip()][:n]
    dst.write_text("\n".join(lines) + "\n")
    return dst


def sweep_spec(args: argparse.Namespace, data: dict, pruned: bool, folder: Path) -> dict:
    return {
        "kind": "sweep", "name": "pruned" if pruned else "unpruned", "output": str(folder),
        "base": {
            "model": {"name": "minilm-l6", "max_length": args.max_length},
            "data": data,
            "train": {"max_steps": args.steps, "epochs": 100, "batch_size": args.batch_size,
                      "eval_every_steps": args.eval_every, "seed": 0},
            "checkpoint": {"every_steps": None, "keep": 1},
            "tracking": {"enabled": False},
        },
        "params": {"train.lr": {"log_range": [1.0e-6, 3.0e-3]},
                   "train.warmup_ratio": {"range": [0.0, 0.3]},
                   "train.weight_decay": {"range": [0.0, 0.1]}},
        "metric": "accuracy", "direction": "maximize", "trials": args.trials, "max_parallel": 1,
        "sampler": "tpe", "seed": args.seed,
        "pruner": {"kind": "median" if pruned else "none", "startup_trials": args.startup,
                   "warmup_steps": 0},
    }


def trial_costs(folder: Path, n: int) -> list[dict]:
    """Per trial, in start order: steps trained, seconds, final (or last) accuracy, how it ended."""
    from llmos.run import read_evals

    out = []
    for number in range(n):
        run_dir = folder / f"t{number}"
        evals = read_evals(run_dir)
        summary = run_dir / "summary.json"
        done = json.loads(summary.read_text()) if summary.is_file() else None
        steps = done["steps"] if done else max((s for s, _ in evals), default=0)
        seconds = (run_dir / "eval.jsonl").stat().st_mtime - (run_dir / "job.json").stat().st_mtime \
            if evals else 0.0
        acc = done["metrics"]["accuracy"] if done else (evals[-1][1]["accuracy"] if evals else None)
        out.append({"trial": number, "steps": steps, "seconds": round(seconds, 1), "accuracy": acc,
                    "state": "complete" if done else "pruned"})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--steps", type=int, default=80, help="max_steps of every trial")
    p.add_argument("--eval-every", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--train-rows", type=int, default=2000)
    p.add_argument("--dev-rows", type=int, default=300)
    p.add_argument("--startup", type=int, default=3, help="median pruner: trials run to the end first")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="llmos-bench-sweep-"))
    os.environ["LLMOS_HOME"] = str(work / "home")
    from llmos.spec import validate_dict
    from llmos.sweep import run_sweep

    data = {"train": str(subset(sst2("train"), work / "train.tsv", args.train_rows)),
            "eval": str(subset(sst2("dev"), work / "dev.tsv", args.dev_rows)),
            "format": "tsv", "header": False, "text_column": "0", "label_column": "1"}
    results = {}
    for pruned in (False, True):
        folder = work / ("pruned" if pruned else "unpruned")
        started = time.perf_counter()
        run_sweep(validate_dict(sweep_spec(args, data, pruned, folder)), poll_s=0.5, say=lambda s: print(s, flush=True))
        wall_s = time.perf_counter() - started
        results["pruned" if pruned else "unpruned"] = {"wall_s": round(wall_s, 1),
                                                         "trials": trial_costs(folder, args.trials)}

    un, pr = results["unpruned"]["trials"], results["pruned"]["trials"]
    target = max(t["accuracy"] for t in un if t["accuracy"] is not None)
    un_steps, un_s = sum(t["steps"] for t in un), sum(t["seconds"] for t in un)
    reached, steps, secs = None, 0, 0.0
    for t in pr:
        steps, secs = steps + t["steps"], secs + t["seconds"]
        if t["state"] == "complete" and t["accuracy"] >= target - 1e-9:
            reached = t["trial"]
            break
    report = {
        "machine": machine(), "args": vars(args), "results": results,
        "best_unpruned_accuracy": target, "unpruned_steps": un_steps, "unpruned_trial_s": round(un_s, 1),
        "pruned_total_steps": sum(t["steps"] for t in pr),
        "best_pruned_accuracy": max(t["accuracy"] for t in pr if t["state"] == "complete"),
        "reached_at_trial": reached,
        "steps_to_reach": steps if reached is not None else None,
        "ratio_steps": round(steps / un_steps, 3) if reached is not None else None,
        "ratio_seconds": round(secs / un_s, 3) if reached is not None and un_s else None,
        "floor": FLOOR,
    }
    report["floor_met"] = report["ratio_steps"] is not None and report["ratio_steps"] <= FLOOR
    (OUT / "sweep.json").write_text(json.dumps(report, indent=2))
    for name, r in results.items():
        print(f"\n{name}: {r['wall_s']:.0f} s")
        for t in r["trials"]:
            print(f"  t{t['trial']:<3} {t['state']:<9} {t['steps']:>4} steps {t['seconds']:>6.1f} s  "
                  f"accuracy {t['accuracy']:.4f}")
    print(f"\nbest unpruned dev accuracy {target:.4f} after {un_steps} steps ({un_s:.0f} trial s)")
    if reached is None:
        print(f"the pruned sweep did not reach it (best {report['best_pruned_accuracy']:.4f}, "
              f"{report['pruned_total_steps']} steps in all)")
    else:
        print(f"pruned sweep reached it at trial {reached} after {steps} steps: {report['ratio_steps']}x the steps "
              f"({report['ratio_seconds']}x the trial seconds); floor {FLOOR}x "
              + ("met" if report["floor_met"] else "NOT met"))
    print(f"written {OUT / 'sweep.json'}")


if __name__ == "__main__":
    main()
