"""Fine-tune MiniLM-L6 on SST-2 (train → dev) with llmos and with the Hugging Face Trainer.

Same model, epochs, batch size and learning rate; each side in its own process so they do not
share caches or threads. Reports wall time and dev accuracy for both and their ratio.

    python benchmarks/train_sst2.py [--epochs 1] [--batch-size 32] [--lr 5e-5]
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
    return {"exit_code": result.exit_code, "process_wall_s": total_s, "loop_wall_s": summary.get("wall_s"),
            "accuracy": summary.get("metrics", {}).get("accuracy")}


TRAINER = r'''
import csv, json, sys, time
import numpy as np
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments)
from llmos.models import minilm_path
train_tsv, dev_tsv, epochs, batch, lr, out = sys.argv[1:7]
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
                         use_cpu=not torch.cuda.is_available())
trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tok),
                  compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())})
start = time.perf_counter(); trainer.train(); train_s = time.perf_counter() - start
metrics = trainer.evaluate(dev)
print(json.dumps({"train_wall_s": train_s, "accuracy": metrics["eval_accuracy"]}))
'''


def run_trainer(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run([sys.executable, "-c", TRAINER, str(sst2("train")), str(sst2("dev")), str(args.epochs),
                               str(args.batch_size), str(args.lr), out], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the Trainer baseline failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--skip-trainer", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as home:
        ours = run_llmos(args, Path(home))
    print(f"llmos:   {json.dumps(ours)}")
    report = {"machine": machine(), "args": vars(args), "llmos": ours}
    if not args.skip_trainer:
        theirs = run_trainer(args)
        print(f"trainer: {json.dumps(theirs)}")
        report["trainer"] = theirs
        report["ratio_process_wall"] = ours["process_wall_s"] / theirs["train_wall_s"]
        report["ratio_loop_wall"] = ours["loop_wall_s"] / theirs["train_wall_s"]
        report["accuracy_delta_points"] = 100 * (ours["accuracy"] - theirs["accuracy"])
        print(f"llmos / Trainer wall time: {report['ratio_process_wall']:.2f}× (whole process), "
              f"{report['ratio_loop_wall']:.2f}× (training loop + eval); "
              f"accuracy {100 * ours['accuracy']:.2f}% vs {100 * theirs['accuracy']:.2f}%")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "train_sst2.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
