"""Compress SmolLM2-135M-Instruct (the `smollm2-135m` preset) into bf16, int8-weight and int4-weight
children in one `llmos compress` run, and compare them with the fp32 parent.

1. register the preset's folder as smollm2/1 @base in a fresh LLMOS_HOME;
2. `llmos compress smollm2@base --recipe bf16 --recipe int8-weight --recipe int4-weight` with the
   gate `max_ppl_increase=5%`: perplexity on held-out text, generation as the server runs it
   (greedy /v1/completions requests through the server's app, every model on the same threads),
   size on disk; the report's table is printed as it is;
3. the baseline in the same run: transformers' `generate()` (greedy, KV cache) on the parent, same
   prompts, same token budget, same threads, in a process of its own;
4. one Markdown table for BENCHMARKS.md.

The held-out text is shipped with llmos: the customer messages of the bundled support-intents test
split (never seen by the model's own training), one JSONL row each (`text`); `--eval` takes another
JSONL/CSV file with a `text` field.

    python benchmarks/compress_llm.py             # 142 texts, 8 prompts x 32 tokens
    python benchmarks/compress_llm.py --quick     # 32 texts, 2 prompts x 8 tokens (a smoke run)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, REPO, machine

RECIPES = ("bf16", "int8-weight", "int4-weight")
GATE = "max_ppl_increase=5%"


def heldout_jsonl(path: Path) -> Path:
    """The bundled support-intents test messages as JSONL rows {"text": ...}."""
    from llmos.data._bundled import bundled_dataset_path

    with (bundled_dataset_path() / "test.csv").open(newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def register_parent(home: Path) -> Path:
    """The preset's folder (converted from GGUF once, cached) registered as smollm2/1 @base."""
    os.environ["LLMOS_HOME"] = str(home)
    from llmos.models import smollm2_path
    from llmos.registry import register_model
    from llmos.spec import TrackingSpec
    from llmos.tracking import start_run

    folder = smollm2_path()
    with start_run(TrackingSpec(system_metrics=False), run_name="smollm2-preset", job={}, tags={}) as tracker:
        uri = tracker.log_model_dir(folder)
        register_model(name="smollm2", run_id=tracker.run_id, artifact_uri=uri, alias="base",
                       tags={"recipe": "preset"})
    return folder


def compress(args: argparse.Namespace, eval_file: Path, work: Path, home: Path) -> tuple[dict, float, str]:
    settings = [f"report.prompts={args.prompts}", f"report.max_new_tokens={args.max_new_tokens}",
                f"report.prompt_tokens={args.prompt_tokens}", f"report.runtime.num_threads={args.threads}",
                f"report.num_threads={args.threads}", "report.latency_runs=5", "report.throughput_batches=2",
                "report.warmup=1", f"report.seq_len={args.prompt_tokens}"]
    if args.eval_limit:
        settings.append(f"data.eval_limit={args.eval_limit}")
    cmd = [sys.executable, "-m", "llmos.cli.main", "compress", "smollm2@base",
           *[x for r in RECIPES for x in ("--recipe", r)], "--eval", str(eval_file), "--gate", GATE,
           "--alias", "small", "--output", str(work), *settings]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LLMOS_HOME": str(home),
                                                                     "COLUMNS": "200"}, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"llmos compress failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads((work / "report.json").read_text()), elapsed, proc.stdout


def hf_generate(folder: Path, prompts: list[str], max_new: int, threads: int) -> dict:
    """transformers' generate() on one folder, one prompt at a time, greedy with its KV cache."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    encoded = [tok(p, return_tensors="pt", add_special_tokens=False) for p in prompts]
    with torch.inference_mode():
        model.generate(**encoded[0], max_new_tokens=4, do_sample=False)  # warm-up, as the server's
        tokens, started = 0, time.perf_counter()
        for enc in encoded:
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False)
            tokens += out.shape[1] - enc["input_ids"].shape[1]
        elapsed = time.perf_counter() - started
    return {"tokens": tokens, "elapsed_s": elapsed, "throughput": tokens / elapsed}


def hf_baseline(report: dict, folder: Path, eval_file: Path, args: argparse.Namespace, work: Path) -> dict:
    from transformers import AutoTokenizer

    from llmos.compress._served_generate import prompts_for

    texts = [json.loads(line)["text"] for line in eval_file.read_text().splitlines() if line.strip()]
    prompts = prompts_for(texts, AutoTokenizer.from_pretrained(str(folder)), args.prompts, args.prompt_tokens)
    request = work / "hf-request.json"
    request.write_text(json.dumps({"folder": str(folder), "prompts": prompts, "max_new": args.max_new_tokens,
                                   "threads": args.threads}))
    result = work / "hf-result.json"
    subprocess.run([sys.executable, __file__, "--hf-generate", str(request), str(result)], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    return json.loads(result.read_text())


def markdown(report: dict, hf: dict, elapsed_s: float) -> str:
    parent = report["parent"]["measured"]
    lines = ["| model | perplexity | vs parent | served tok/s | vs parent | ms/token p50 | MB on disk | vs parent | "
             "same greedy answers | gate (max_ppl_increase 5%) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
             f"| parent fp32 | {parent['metrics']['perplexity']:.2f} | | {parent['throughput']:.1f} | | "
             f"{parent['latency_p50_ms']:.0f} | {parent['size_mb']:.0f} | | | |"]
    for c in report["children"]:
        m, vs = c["measured"], c["vs_parent"]
        verdict = "pass" if c["gate"]["passed"] else f"fail: {c['gate']['reason']}"
        same = "" if c.get("same_answers") is None else f"{c['same_answers']:.0%}"
        lines.append(f"| {c['label']} | {m['metrics']['perplexity']:.2f} | {vs['metric_change_pct']:+.1f}% | "
                     f"{m['throughput']:.1f} | {vs['speedup']:.2f}x | {m['latency_p50_ms']:.0f} | {m['size_mb']:.0f} | "
                     f"{vs['size_ratio']:.2f}x | {same} | {verdict} |")
    lines.append(f"| baseline: transformers generate(), fp32 parent | | | {hf['throughput']:.1f} | "
                 f"{hf['throughput'] / parent['throughput']:.2f}x | | | | | |")
    load = parent["served"]["load"]
    lines.append("")
    lines.append(f"{load['prompts']} prompts of {load['prompt_tokens']} tokens, up to {load['max_new_tokens']} new "
                 f"tokens each, greedy, {load['clients']} in flight, {parent['served']['runtime']['threads']} "
                 f"threads for every model; whole `llmos compress` run {elapsed_s:.0f} s; {machine()}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--hf-generate":
        from llmos.serve import openmp_defaults

        openmp_defaults()  # the server's OpenMP settings, before torch loads: the same footing as the served figures
        req = json.loads(Path(sys.argv[2]).read_text())
        result = hf_generate(Path(req["folder"]), req["prompts"], req["max_new"], req["threads"])
        Path(sys.argv[3]).write_text(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 32 texts, 2 prompts x 8 tokens")
    parser.add_argument("--eval", type=Path, default=None, help="held-out JSONL/CSV with a text field")
    parser.add_argument("--threads", type=int, default=2, help="threads of every model (served and baseline)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--eval-limit", type=int, default=None)
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.max_new_tokens, args.eval_limit = 2, 8, 32
    OUT.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="compress-llm-", dir=OUT))
    eval_file = args.eval or heldout_jsonl(home / "heldout.jsonl")
    folder = register_parent(home)
    report, elapsed, table = compress(args, eval_file, home / "work", home)
    print(table)
    hf = hf_baseline(report, folder, eval_file, args, home)
    text = markdown(report, hf, elapsed)
    print(text)
    (home / "summary.md").write_text(text + "\n")
    print(f"\nreport: {home / 'work' / 'report.json'}; repo {REPO}")


if __name__ == "__main__":
    main()
