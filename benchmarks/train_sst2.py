"""Fine-tune MiniLM-L6 on SST-2 (train → dev) with llmos and with the Hugging Face Trainer.

Same model, epochs, batch size and learning rate; each side in its own process so they do not
share caches or threads. Two Trainer baselines in the same run: the tuned one a practitioner
would use (length-grouped batches, fused AdamW: the Trainer's default on torch >= 2.8, and the
faster precision on this CPU) and the Trainer at its defaults (fp32, random batches). Reported for
each: the whole process (start-up, data, training, evaluation, saving; llmos also tracks in
MLflow), the steady-state training rate (samples/s over every step after the first 10) and dev
accuracy.

The tuned Trainer's precision: bf16 autocast on a CPU with bf16 matmuls (AMX, AVX512-BF16), where
it is ~3x fp32; on one without (AVX2 only, where bf16 is emulated) a practitioner would measure
both, and so does this script: `--tuned-precision best` runs the tuned Trainer in bf16 and in fp32
and compares llmos with the one of higher steady-state rate.

    python benchmarks/train_sst2.py [--epochs 1] [--batch-size 32] [--lr 5e-5] [--skip-default]
                                    [--tuned-precision best|bf16|fp32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine, sst2

from llmos._cpu import cpu_has_bf16


def run_llmos(args: argparse.Namespace, home: Path) -> dict:
    from llmos.run import launch
    from llmos.spec import parse_job

    job = parse_job({
        "name": "bench-sst2", "output": str(home / "runs" / "bench-sst2"),
        "model": {"name": "minilm-l6", "max_length": 128},
        "data": {"train": str(sst2("train")), "eval": str(sst2("dev")), "format": "tsv", "header": False,
                 "text_column": "0", "label_column": "1"},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "precision": args.precision,
                  "log_every_steps": 20},
        "checkpoint": {"every_steps": None},
    })
    start = time.perf_counter()
    result = launch(job, fresh=True, env={"LLMOS_HOME": str(home)})
    total_s = time.perf_counter() - start
    summary = result.summary or {}
    if result.exit_code != 0:
        raise SystemExit(f"the llmos run failed (exit {result.exit_code})")
    return {"process_wall_s": total_s, "loop_wall_s": summary.get("wall_s"),
            "samples_per_s": summary.get("samples_per_s"), "accuracy": summary.get("metrics", {}).get("accuracy")}


TRAINER = r'''
import csv, json, sys, time
import numpy as np
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainerCallback, TrainingArguments)
from llmos.models import minilm_path
train_tsv, dev_tsv, epochs, batch, lr, out, variant = sys.argv[1:8]
tuned = variant.startswith("tuned")
class Rate(TrainerCallback):  # steady state: wall time between the ends of step 10 and of the last step
    marks = []
    def on_step_end(self, args, state, control, **kw):
        self.marks.append(time.perf_counter())
def read(path):
    rows = [r for r in csv.reader(open(path), delimiter="\t", quoting=csv.QUOTE_NONE) if r]
    return [r[0] for r in rows], [int(r[1]) for r in rows]
tok = AutoTokenizer.from_pretrained(str(minilm_path()))
def encode(path):
    texts, labels = read(path)
    enc = tok(texts, truncation=True, max_length=128)
    return [{"input_ids": i, "attention_mask": a, "token_type_ids": t, "labels": y}
            for i, a, t, y in zip(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], labels)]
train, dev = encode(train_tsv), encode(dev_tsv)
torch.manual_seed(42)
model = AutoModelForSequenceClassification.from_pretrained(str(minilm_path()), num_labels=2)
args = TrainingArguments(output_dir=out, num_train_epochs=float(epochs), per_device_train_batch_size=int(batch),
                         per_device_eval_batch_size=64, learning_rate=float(lr),
                         warmup_steps=int(0.06 * float(epochs) * -(-len(train) // int(batch))),  # llmos's 6%
                         weight_decay=0.01, report_to=[], save_strategy="no", logging_steps=50, seed=42,
                         use_cpu=not torch.cuda.is_available(), bf16=variant == "tuned-bf16",
                         train_sampling_strategy="group_by_length" if tuned else "random")
trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tok),
                  callbacks=[Rate()],
                  compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())})
start = time.perf_counter(); trainer.train(); train_s = time.perf_counter() - start
metrics = trainer.evaluate(dev)
trainer.save_model(out + "/model")  # as llmos saves its model
m = Rate.marks
rate = (len(m) - 10) * int(batch) / (m[-1] - m[9]) if len(m) > 11 else None
print(json.dumps({"train_wall_s": train_s, "samples_per_s": rate, "accuracy": metrics["eval_accuracy"],
                  "optim": str(args.optim)}))
'''


def run_trainer(args: argparse.Namespace, variant: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", TRAINER, str(sst2("train")), str(sst2("dev")), str(args.epochs),
                               str(args.batch_size), str(args.lr), out, variant], capture_output=True, text=True)
        total_s = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"the Trainer baseline failed:\n{proc.stderr[-3000:]}")
    return {"process_wall_s": total_s, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--skip-trainer", action="store_true")
    parser.add_argument("--skip-default", action="store_true", help="skip the untuned Trainer (fp32, random)")
    parser.add_argument("--tuned-precision", choices=["best", "bf16", "fp32"], default="best",
                        help="the tuned Trainer's precision; best: bf16 where the CPU has bf16 matmuls, else the "
                             "faster of bf16 and fp32, both measured")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    report: dict = {"machine": machine(), "args": vars(args)}
    with tempfile.TemporaryDirectory() as home:
        report["llmos"] = ours = run_llmos(args, Path(home))
    print(f"llmos:           {json.dumps(ours)}", flush=True)
    if args.tuned_precision != "best":
        tuned = [args.tuned_precision]
    else:
        tuned = ["bf16"] if cpu_has_bf16() else ["bf16", "fp32"]
    variants = [] if args.skip_trainer else [f"tuned-{p}" for p in tuned] + ([] if args.skip_default else ["default"])
    for variant in variants:
        report[f"trainer_{variant}"] = run_trainer(args, variant)
        print(f"trainer {variant + ':':11s} {json.dumps(report[f'trainer_{variant}'])}", flush=True)
    if tuned and not args.skip_trainer:  # the strongest tuned baseline: the higher steady-state rate
        best = max(tuned, key=lambda p: report[f"trainer_tuned-{p}"]["samples_per_s"] or 0)
        report["trainer_tuned"] = {**report[f"trainer_tuned-{best}"], "precision": best}
        print(f"the tuned Trainer: {best}", flush=True)
    for variant in [v for v in ("tuned", "default") if f"trainer_{v}" in report]:
        theirs = report[f"trainer_{variant}"]
        report[f"vs_{variant}"] = ratios = {
            "process_wall": ours["process_wall_s"] / theirs["process_wall_s"],
            "samples_per_s": ours["samples_per_s"] / theirs["samples_per_s"],
            "accuracy_delta_points": 100 * (ours["accuracy"] - theirs["accuracy"])}
        print(f"llmos vs the {variant} Trainer: whole process {ratios['process_wall']:.2f}x the time, "
              f"steady state {ratios['samples_per_s']:.2f}x the samples/s, "
              f"accuracy {100 * ours['accuracy']:.2f}% vs {100 * theirs['accuracy']:.2f}%", flush=True)
    if "vs_tuned" in report:
        vs = report["vs_tuned"]
        report["floors"] = {"whole process <= 0.8x the tuned Trainer's": vs["process_wall"] <= 0.8,
                            "steady-state samples/s >= 1.2x the tuned Trainer's": vs["samples_per_s"] >= 1.2,
                            "dev accuracy >= the tuned Trainer's": vs["accuracy_delta_points"] >= 0}
        for name, ok in report["floors"].items():
            print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "train_sst2.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
