"""Steady-state training throughput of the llmos recipe (tracking on) against a plain PyTorch loop.

Same model (MiniLM-L6 classifier), same batches (SST-2 train, the recipe's length-grouped plan),
same precision, same optimizer work (AdamW + clipping). Each measurement runs in its own
process; the two sides alternate `--rounds` times and the medians are compared.

    python benchmarks/train_throughput.py [--steps 80] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine, sst2

WARMUP_STEPS = 10

PLAIN = r'''
import sys, time, torch
from llmos.data import BatchPlan, collate, encode, load_dataset
from llmos.models import minilm_path
from llmos.spec import DataSpec
from transformers import AutoModelForSequenceClassification, AutoTokenizer
steps, batch_size, warmup, train_tsv = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(int(sys.argv[5]))
data = load_dataset(DataSpec(train=train_tsv, format="tsv", header=False, text_column="0", label_column="1"),
                    "classification")
tok = AutoTokenizer.from_pretrained(str(minilm_path()))
enc = encode(data.train, tok, max_length=128, task="classification", cache_key=data.data_hash + ":train")
torch.manual_seed(42)
model = AutoModelForSequenceClassification.from_pretrained(str(minilm_path()), num_labels=2)
opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
plan = BatchPlan(tuple(enc.lengths), batch_size=batch_size, seed=42)
model.train()
for i, step in enumerate(plan.epoch(0)[:steps]):
    if i == warmup:
        start = time.perf_counter()
    batch = collate(enc, step, pad_id=tok.pad_token_id, task="classification")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
print((steps - warmup) * batch_size / (time.perf_counter() - start))
'''


def plain(args: argparse.Namespace) -> float:
    out = subprocess.run([sys.executable, "-c", PLAIN, str(args.steps), str(args.batch_size), str(WARMUP_STEPS),
                          str(sst2("train")), str(args.threads)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def recipe(args: argparse.Namespace) -> float:
    from mlflow.tracking import MlflowClient

    from llmos.run import launch
    from llmos.spec import parse_job

    with tempfile.TemporaryDirectory() as home:
        job = parse_job({
            "name": "throughput", "output": f"{home}/run",
            "model": {"name": "minilm-l6", "max_length": 128},
            "data": {"train": str(sst2("train")), "eval": str(sst2("dev")), "format": "tsv", "header": False,
                     "text_column": "0", "label_column": "1"},
            "train": {"epochs": 1, "max_steps": args.steps, "batch_size": args.batch_size, "lr": 5e-5,
                      "precision": "bf16", "log_every_steps": WARMUP_STEPS, "num_threads": args.threads},
            "checkpoint": {"every_steps": None},
        })
        result = launch(job, env={"LLMOS_HOME": home})
        assert result.exit_code == 0, result.exit_code
        run_id = result.summary["run_id"]
        client = MlflowClient(f"sqlite:///{home}/mlflow.db")
        rates = [m.value for m in client.get_metric_history(run_id, "train/wall_samples_per_s")
                 if m.step > WARMUP_STEPS]
    # every window holds the same number of examples: the overall rate is the harmonic mean
    return len(rates) / sum(1 / r for r in rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ours, theirs = [], []
    for r in range(args.rounds):
        theirs.append(plain(args))
        ours.append(recipe(args))
        print(f"round {r + 1}: plain loop {theirs[-1]:.1f} samples/s, llmos recipe {ours[-1]:.1f} samples/s",
              flush=True)
    report = {"machine": machine(), "args": vars(args), "plain_samples_per_s": theirs, "llmos_samples_per_s": ours,
              "ratio_median": statistics.median(ours) / statistics.median(theirs), "when": time.ctime()}
    print(f"llmos / plain loop throughput: {report['ratio_median']:.3f}×")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "train_throughput.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
