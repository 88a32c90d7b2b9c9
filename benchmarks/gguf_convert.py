"""The SmolLM2 GGUF file converted to a safetensors folder (what `smollm2-135m`'s first use does),
against transformers reading the file by itself: each way in a new Python, alternating, nothing cached.

The baseline is the same conversion with `llmos.models._gguf._parsed_once` turned into a no-op, so
transformers parses the file's header once for the tokenizer, once for the config and once for the
weights, and builds gguf's tensor-name table once per module, as it does when called directly.

    .venv/bin/python benchmarks/gguf_convert.py [--repeats 2]

Prints a table; a JSON record goes to benchmarks/out/gguf_convert.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine

CHILD = """
import contextlib, json, sys, time
from pathlib import Path
if sys.argv[1] == "transformers":
    import llmos.models._gguf as g
    g._parsed_once = contextlib.nullcontext
from llmos.models import smollm2_gguf
from llmos.models._gguf import convert_gguf
import torch, transformers  # imported before the clock starts: the same for both
started = time.perf_counter()
convert_gguf(smollm2_gguf(), Path(sys.argv[2]), {"task": "causal-lm"})
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def convert_once(way: str) -> float:
    with tempfile.TemporaryDirectory(prefix="gguf-convert-") as out:
        done = subprocess.run([sys.executable, "-c", CHILD, way, out], capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"transformers": [], "llmos": []}
    for i in range(args.repeats):
        for way in ("transformers", "llmos"):
            times[way].append(convert_once(way))
            print(f"run {i + 1}, {way}: {times[way][-1]:.1f} s", flush=True)
    base, ours = statistics.median(times["transformers"]), statistics.median(times["llmos"])
    print(f"\nmachine: {machine()}")
    print("| SmolLM2-135M-Instruct Q4_1 GGUF -> safetensors folder | median | runs |")
    print("|---|---:|---|")
    print(f"| transformers reading the file by itself | {base:.1f} s | "
          f"{', '.join(f'{t:.1f}' for t in times['transformers'])} |")
    print(f"| llmos (the header parsed once, one name table) | {ours:.1f} s | "
          f"{', '.join(f'{t:.1f}' for t in times['llmos'])} |")
    print(f"| **ratio** | **{ours / base:.2f}x** | |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gguf_convert.json").write_text(json.dumps({"machine": machine(), "times": times}, indent=2))


if __name__ == "__main__":
    main()
