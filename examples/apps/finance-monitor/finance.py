"""finance-monitor: fine-tune a headline sentiment model with llmos, then monitor a live stream with it.

    python finance.py             # MiniLM-L6, the full data (minutes on a laptop CPU)
    python finance.py --tiny      # the 2-layer test model, less data (seconds; the figures mean nothing)

It writes its data (generated, data.py), fine-tunes, checks and promotes the model with one llmos
pipeline (`llmos run pipeline.yaml`), serves it (`llmos serve`, its own process), measures it on
the held-out headlines, then runs the monitor (monitor.py, its own process, a client of that
server) twice on a live stream fed at --rate headlines/s
with a local webhook receiving the alerts: once undisturbed (the latency figures) and once killed
with SIGKILL mid-stream and started again (the restart check). It reports a table, results.json
and sentiment.png in --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import data
import live
import measure
import report
import yaml

HERE = Path(__file__).resolve().parent
# --tiny: the test preset and enough steps to learn something; a second name keeps real models apart.
TINY = {"model": {"name": "tiny-bert"}, "train": {"lr": 5.0e-3, "num_threads": 1, "epochs": 6},
        "tracking": {"system_metrics": False}}
TINY_SIZES = {"n_train": 600, "n_eval": 100, "n_test": 200, "n_stream": 300}


def pipeline_spec(tiny: bool) -> dict:
    """The shipped pipeline.yaml, patched for --tiny."""
    spec = yaml.safe_load((HERE / "pipeline.yaml").read_text(encoding="utf-8"))
    if not tiny:
        return spec
    spec["name"] = "finance-sentiment-tiny"
    for stage in spec["stages"]:
        if "train" in stage:
            body = stage["train"]
            for key, patch in TINY.items():
                body[key] = {**body.get(key, {}), **patch}
            body["register"]["name"] = "finance-sentiment-tiny"
        if "compress" in stage:  # nor a speed-up to show on a 2-layer model: only the accuracy must hold
            stage["compress"]["gate"] = {"max_metric_drop": 100, "min_speedup": 0.01, "max_size_ratio": 1.0}
            stage["compress"]["tracking"] = {"system_metrics": False}
            stage["compress"]["report"] = {"latency_runs": 3, "throughput_batches": 1, "warmup": 1, "compile": "never",
                                           "num_threads": 1, "runtime": {"num_threads": 1, "compile": "off"}}
        if "evaluate" in stage:
            stage["evaluate"]["min"] = {}  # a random-init model has no bar to clear
    return spec


def train(out: Path, spec: dict) -> str:
    """Run the pipeline in the foreground with the llmos CLI; the reference of the promoted model."""
    path = out / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    llmos = shutil.which("llmos", path=str(Path(sys.executable).parent)) or shutil.which("llmos") or "llmos"
    done = subprocess.run([llmos, "run", str(path), "--json"], stdout=subprocess.PIPE, text=True)
    result = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    (out / "pipeline-result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    if done.returncode != 0 or result.get("state") != "succeeded":
        failed = [f"{s['name']}: {s['reason']}" for s in result.get("stages", []) if s["state"] == "FAILED"]
        sys.exit(f"error: the pipeline failed: {'; '.join(failed) or 'see the output above'}\n"
                 f"hint: fix the stage named, then run this again; {out / 'pipeline-result.json'} has every stage")
    name = next(s["train"]["register"]["name"] for s in spec["stages"] if "train" in s)
    return f"{name}@production"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the 2-layer test model, less data (seconds)")
    parser.add_argument("--out", type=Path, default=Path("finance-monitor-out"), help="folder for data and results")
    parser.add_argument("--rate", type=float, default=50.0, help="headlines per second in the live runs")
    parser.add_argument("--threads", type=int, default=1, help="model threads of the served model")
    parser.add_argument("--model", help="a registered model to monitor with (name@alias): skips the fine-tuning")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    for old in ("steady", "restart"):  # a live run starts from an empty stream and state
        shutil.rmtree(out / old, ignore_errors=True)
    splits = data.write_all(out / "data", **(TINY_SIZES if args.tiny else {}))
    ref = args.model or train(out, pipeline_spec(args.tiny))
    results: dict = {"model": "tiny-bert" if args.tiny else "minilm-l6", "ref": ref, "rate_per_s": args.rate,
                     "device": f"{platform.machine()} CPU, {args.threads} model thread(s)"}
    stream = splits["stream"]
    print(f"serving {ref} (llmos serve); measuring it on {len(splits['test'])} held-out headlines")
    with live.served(ref, args.threads, out) as url:
        results["accuracy"] = measure.accuracy(url, splits["test"])
        print("live run 1 (undisturbed): the latency")
        steady = live.run(out / "steady", stream, url, rate_per_s=args.rate)
        print("live run 2: killed and restarted mid-stream")
        again = live.run(out / "restart", stream, url, rate_per_s=args.rate, kill_at=int(len(stream) * 0.45))
    results["feed_s"] = steady["feed_s"]
    results["latency"] = measure.latency(steady)
    results["stream_accuracy"] = measure.stream_accuracy(steady, stream)
    results["restart"] = measure.restart_check(again, stream)
    scored = measure.read_jsonl(out / "steady" / "state" / "scored.jsonl")
    alerts = measure.read_jsonl(out / "steady" / "state" / "alerts.jsonl")
    results["alerts"] = [{k: a[k] for k in ("id", "company", "rule", "value", "headline", "text")} for a in alerts]
    report.plot(scored, {r["id"]: r["label"] for r in stream}, alerts, out / "sentiment.png")
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(report.table(results))
    print(f"wrote {out / 'results.json'} and {out / 'sentiment.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
