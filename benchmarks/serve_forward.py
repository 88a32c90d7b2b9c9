"""The ceiling of dynamic batching on this machine: MiniLM-L6 alone, in-process, on SST-2 dev
sentences, sentences per second at batch 1, 16 and 32, fp32 and bf16, one and two threads.

    python benchmarks/serve_forward.py

A batch pays for padding to its longest sentence, as the server's does; no HTTP, no queue.
"""

from __future__ import annotations

import csv
import time

import torch
from _common import sst2

from llmos.models import build


def rate(model, tokenizer, texts: list[str], batch: int, threads: int, bf16: bool, n: int = 160) -> float:
    torch.set_num_threads(threads)
    done, i = 0, 0
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        while done < n:
            chunk = texts[i:i + batch]
            i += batch
            model(**tokenizer(chunk, padding=True, truncation=True, max_length=128, return_tensors="pt"))
            done += len(chunk)
    return done / (time.perf_counter() - start)


def main() -> None:
    built = build("minilm-l6", "classification", label_names=["negative", "positive"])
    model, tokenizer = built.model.eval(), built.tokenizer
    with sst2("dev").open() as f:
        texts = [row[0] for row in csv.reader(f, delimiter="\t")][:400]  # text, label; no header
    rate(model, tokenizer, texts, 16, 2, False, n=32)  # warm-up
    for bf16 in (False, True):
        for threads in (1, 2):
            r1, r16, r32 = (rate(model, tokenizer, texts, b, threads, bf16) for b in (1, 16, 32))
            print(f"{'bf16' if bf16 else 'fp32'} threads={threads}: batch 1 {r1:.0f}/s, 16 {r16:.0f}/s, "
                  f"32 {r32:.0f}/s; batch 16 / batch 1 = {r16 / r1:.2f}x", flush=True)


if __name__ == "__main__":
    main()
