"""The ceiling of dynamic batching on this machine: MiniLM-L6 alone, in-process, on SST-2 dev
sentences, sentences per second at batch 1, 16 and 32, fp32 and bf16, one and two threads,
padded to the longest sentence and packed (the server's runtime.packing: auto).

    python benchmarks/serve_forward.py

Batches are tokenized and padded as the server's are; no HTTP, no queue.
"""

from __future__ import annotations

import csv
import time

import torch
from _common import sst2

from llmos._cpu import cpu_has_bf16
from llmos.models import build
from llmos.serve._packing import enable_packing
from llmos.serve._rt_torch import cast_linear_weights


def rate(model, tokenizer, texts: list[str], batch: int, threads: int, bf16: bool, packed=None, n: int = 160) -> float:
    torch.set_num_threads(threads)
    done, i = 0, 0
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        while done < n:
            chunk = texts[i:i + batch]
            i += batch
            inputs = tokenizer(chunk, padding=True, truncation=True, max_length=128, return_tensors="pt")
            if packed is not None:
                packed.lengths = inputs["attention_mask"].sum(1).tolist()
            model(**inputs)
            done += len(chunk)
    return done / (time.perf_counter() - start)


def main() -> None:
    built = build("minilm-l6", "classification", label_names=["negative", "positive"])
    model, tokenizer = built.model.eval(), built.tokenizer
    packed = enable_packing(model)
    assert not isinstance(packed, str), packed
    with sst2("dev").open() as f:
        texts = [row[0] for row in csv.reader(f, delimiter="\t")][:400]  # text, label; no header
    rate(model, tokenizer, texts, 16, 2, False, n=32)  # warm-up
    # Without bf16 units (AVX512-BF16/AMX) bf16 is emulated, several times slower than fp32: skipped.
    for bf16 in (False, True) if cpu_has_bf16() else (False,):
        if bf16:  # as the server prepares a bf16 model (the fp32 runs are done by now)
            cast_linear_weights(model, torch.bfloat16)
        for threads in (1, 2):
            r1, r16, r32 = (rate(model, tokenizer, texts, b, threads, bf16) for b in (1, 16, 32))
            p16, p32 = (rate(model, tokenizer, texts, b, threads, bf16, packed) for b in (16, 32))
            packed.lengths = None
            print(f"{'bf16' if bf16 else 'fp32'} threads={threads}: batch 1 {r1:.0f}/s; padded 16 {r16:.0f}/s, "
                  f"32 {r32:.0f}/s; packed 16 {p16:.0f}/s, 32 {p32:.0f}/s; batch 16 / batch 1 = {r16 / r1:.2f}x "
                  f"padded, {p16 / r1:.2f}x packed", flush=True)


if __name__ == "__main__":
    main()
