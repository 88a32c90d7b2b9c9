"""What a burst of prompts costs SmolLM2-135M on this machine (issue 15.4, the TTFT floor): one forward
pass over k new prompts at once, each ~30 tokens after a kept 150-token system prompt (prefix reuse, as
`llmos serve` runs them), for k = 1..16, and one decode step of 16 running sequences.

In a closed loop of 16 streaming clients whose answers have the same length, answers end together and
their next requests arrive together. Whatever the scheduler does, the last of k simultaneous
arrivals has its first token only once all k prompts were computed (prefill work cannot be skipped), so
its TTFT is at least the time of a k-row prefill; the floor "TTFT p95 at concurrency 16 <= 2x TTFT at
concurrency 1" asks that to stay within twice a 1-row prefill. The ratio prefill(k) / prefill(1)
printed here is that bound on this machine's cores. Run under `flock /tmp/llmos-bench.lock`.

    python benchmarks/prefill_scaling.py [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine
from serve_llm import SYSTEM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="timed passes per size (median)")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

    from llmos.data import bundled_dataset_path
    from llmos.models import smollm2_path

    torch.set_num_threads(args.threads)
    folder = smollm2_path()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with open(bundled_dataset_path("support-intents") / "test.csv", newline="") as f:
        texts = [row["text"] for row, _ in zip(csv.DictReader(f), range(16), strict=False)]
    prompts = [tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": t}],
                                       add_generation_prompt=True)["input_ids"] for t in texts]
    shared = min(next((i for i, (a, b) in enumerate(zip(prompts[0], p, strict=False)) if a != b), len(p))
                 for p in prompts[1:])
    with torch.inference_mode():
        prefix = model(input_ids=torch.tensor([prompts[0][:shared]]), use_cache=True).past_key_values
        kv = [(layer.keys, layer.values) for layer in prefix.layers]

        def prefill(k: int) -> tuple[float, int]:
            rows = [p[shared:] for p in prompts[:k]]
            longest = max(len(r) for r in rows)
            ids = torch.full((k, longest), tok.pad_token_id or 0, dtype=torch.long)
            mask = torch.zeros((k, longest), dtype=torch.long)
            for i, row in enumerate(rows):
                ids[i, longest - len(row):] = torch.tensor(row)
                mask[i, longest - len(row):] = 1
            positions = shared + (mask.cumsum(-1) - 1).clamp(min=0)
            cache = DynamicCache(ddp_cache_data=[(a.expand(k, -1, -1, -1).contiguous(),
                                                  b.expand(k, -1, -1, -1).contiguous()) for a, b in kv],
                                 config=model.config)
            full = torch.cat([torch.ones((k, shared), dtype=torch.long), mask], dim=-1)
            t0 = time.perf_counter()
            out = model(input_ids=ids, attention_mask=full, position_ids=positions, past_key_values=cache,
                        use_cache=True, logits_to_keep=1)
            return time.perf_counter() - t0, int(mask.sum()), out

        sizes = [1, 2, 4, 8, 16]
        prefill(1)  # warm-up
        rows = []
        for k in sizes:
            times = [prefill(k)[0] for _ in range(args.rounds)]
            rows.append({"rows": k, "new_tokens": prefill(k)[1], "ms": 1000 * statistics.median(times)})
        _, _, out = prefill(16)
        cache = out.past_key_values
        length = cache.layers[0].keys.shape[2]
        mask = torch.ones((16, length + 1), dtype=torch.long)
        last = out.logits[:, -1, :].argmax(-1, keepdim=True)
        decode = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            model(input_ids=last, attention_mask=mask, position_ids=torch.full((16, 1), length),
                  past_key_values=cache, use_cache=True)
            decode.append(time.perf_counter() - t0)
            for layer in cache.layers:  # back to the same length for the next timed step
                layer.keys, layer.values = layer.keys[:, :, :length], layer.values[:, :, :length]
    one = rows[0]["ms"]
    print(machine())
    print(f"SmolLM2-135M fp32, {args.threads} threads, kept prefix {shared} tokens; median of {args.rounds}")
    print(f"{'rows':>4} {'new tokens':>10} {'prefill ms':>10} {'x 1 row':>8}")
    for r in rows:
        r["ratio"] = r["ms"] / one
        print(f"{r['rows']:>4} {r['new_tokens']:>10} {r['ms']:>10.1f} {r['ratio']:>8.2f}")
    decode_ms = 1000 * statistics.median(decode)
    print(f"one decode step of 16 sequences ({length} tokens of context): {decode_ms:.1f} ms")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "prefill_scaling.json").write_text(json.dumps(
        {"machine": machine(), "threads": args.threads, "prefix_tokens": shared, "prefill": rows,
         "decode_16_ms": decode_ms}, indent=2))


if __name__ == "__main__":
    main()
