"""Serving a torchao int8 model on CPU: eager vs compiled (the server's runtime.compile: auto),
against its fp32 parent. MiniLM-L6 in-process on SST-2 dev sentences, one thread, batches packed
as the server packs them; sentences per second at batch 1 and 16, and the compile time.

    python benchmarks/serve_int8.py      # ~5 minutes on a 2-core machine (most of it compiling)

The int8 model is torchao's Int8DynamicActivationInt8Weight on the Linear layers (the `int8`
recipe of llmos compress); the weights are the pretrained encoder's with a fresh 2-label head.
"""

from __future__ import annotations

import copy
import csv
import json
import time

import torch
from _common import OUT, machine, sst2

from llmos.models import build
from llmos.serve._compiled import CompiledStack
from llmos.serve._packing import enable_packing, layer_stack


def rate(model, packed, tokenizer, texts: list[str], batch: int, seconds: float) -> float:
    """Sentences per second over at least `seconds` (and at least two batches)."""
    done, i, calls = 0, 0, 0
    start = time.perf_counter()
    with torch.inference_mode():
        while calls < 2 or time.perf_counter() - start < seconds:
            chunk = [texts[(i + k) % len(texts)] for k in range(batch)]
            i += batch
            inputs = tokenizer(chunk, padding=True, truncation=True, max_length=128, return_tensors="pt")
            packed.lengths = inputs["attention_mask"].sum(1).tolist()
            model(**inputs)
            packed.lengths = None
            done, calls = done + batch, calls + 1
    return done / (time.perf_counter() - start)


def main() -> None:
    import torch._inductor.config as inductor
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    torch.set_num_threads(1)
    torch.manual_seed(0)
    with sst2("dev").open(newline="") as f:
        texts = [row[0] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row][1:]
    built = build("minilm-l6", "classification", label_names=["negative", "positive"])
    fp32 = built.model.eval()
    int8 = copy.deepcopy(fp32)
    quantize_(int8, Int8DynamicActivationInt8WeightConfig())
    compiled = copy.deepcopy(int8)
    sides = {"fp32": (fp32, enable_packing(fp32)), "int8 eager": (int8, enable_packing(int8))}
    packed = enable_packing(compiled)
    owner, name, kind = layer_stack(compiled, packed)
    inductor.freezing = True
    setattr(owner, name, CompiledStack(getattr(owner, name), kind))
    start = time.perf_counter()
    for batch in (1, 16):  # the two graphs, as the server's warm-up builds them
        rate(compiled, packed, built.tokenizer, texts, batch, 0.0)
    compile_s = time.perf_counter() - start
    sides["int8 compiled"] = (compiled, packed)
    record: dict = {"machine": machine(), "threads": 1, "compile_s": round(compile_s, 1), "rates": {}}
    for batch in (1, 16):
        for side, (model, pk) in sides.items():
            seconds = 3.0 if side != "int8 eager" else 0.0  # eager int8: two batches are plenty
            record["rates"][f"{side} b{batch}"] = round(rate(model, pk, built.tokenizer, texts, batch, seconds), 2)
            print(f"{side:14s} batch {batch:2d}: {record['rates'][f'{side} b{batch}']:8.2f} sentences/s", flush=True)
    for batch in (1, 16):
        base = record["rates"][f"fp32 b{batch}"]
        for side in ("int8 eager", "int8 compiled"):
            record[f"{side} / fp32 b{batch}"] = round(record["rates"][f"{side} b{batch}"] / base, 3)
    print(json.dumps({k: v for k, v in record.items() if k != "machine"}, indent=1))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "serve-int8.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
