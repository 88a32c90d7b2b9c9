"""A compression's measurements started from warm processes (the default) against one new
`python -m` process per measurement (LLMOS_WARM_START=off), in the same run.

1. `llmos quickstart` registers MiniLM-L6 fine-tuned on the bundled support-intents data;
2. `llmos compress quickstart@candidate` with the recipes below measures the parent and every
   child (metric + fixed-length figure in one process, served figures in another: 2 processes
   per model), alternately with LLMOS_WARM_START=off and on, `--rounds` times each;
3. prints the whole command's wall time and the time from "measuring" to the report (the
   compression's own progress lines), the median of each, and their ratio.

    python benchmarks/warm_start.py                  # 3 recipes, 2 rounds
    python benchmarks/warm_start.py --rounds 3 --recipes bf16,int8,onnx-int8,int8-weight

report.compile=never keeps torch.compile (minutes on 2 cores, the same either way) out of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine

LLMOS = [sys.executable, "-m", "llmos.cli.main"]
EVAL = Path(__file__).resolve().parents[1] / "src" / "llmos" / "datasets" / "support_intents" / "test.csv"


def compress(home: Path, recipes: list[str], warm: str, out: Path) -> tuple[float, float]:
    """(whole command, measuring phase) in seconds for one `llmos compress`."""
    args = [*LLMOS, "compress", "quickstart@candidate", *[a for r in recipes for a in ("--recipe", r)],
            "--eval", str(EVAL), "--output", str(out), "report.compile=never"]
    env = {**os.environ, "LLMOS_HOME": str(home), "LLMOS_WARM_START": warm, "COLUMNS": "200"}
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    measuring = None
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if measuring is None and "measuring " in line and " models" in line:
            measuring = time.perf_counter()
        if measuring is not None and "registering" in line:
            measured = time.perf_counter() - measuring
    if proc.wait() != 0:
        raise SystemExit(f"llmos compress failed:\n{''.join(lines[-20:])}")
    return time.perf_counter() - started, measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="bf16,int8,onnx-int8")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    recipes = args.recipes.split(",")
    with tempfile.TemporaryDirectory(prefix="llmos-warm-bench-") as tmp:
        home = Path(tmp) / "home"
        subprocess.run([*LLMOS, "quickstart", "--max-steps", "30"], env={**os.environ, "LLMOS_HOME": str(home)},
                       check=True, stdout=subprocess.DEVNULL)
        times: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
        for r in range(args.rounds):
            for warm in ("off", "on") if r % 2 == 0 else ("on", "off"):  # alternate which goes first
                whole, measured = compress(home, recipes, warm, Path(tmp) / f"out-{warm}-{r}")
                times[warm].append((whole, measured))
                print(f"round {r + 1} LLMOS_WARM_START={warm:3}  whole {whole:6.1f} s  measuring {measured:6.1f} s",
                      flush=True)
    med = {w: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)) for w, ts in times.items()}
    models = len(recipes) + 1
    print(f"\nmachine: {machine()}")
    print(f"llmos compress, MiniLM-L6 parent + {len(recipes)} children ({', '.join(recipes)}), "
          f"{2 * models} measuring processes, median of {args.rounds}:")
    print("| | whole command | measuring phase |\n|---|---:|---:|")
    print(f"| a new process per measurement (LLMOS_WARM_START=off) | {med['off'][0]:.1f} s | {med['off'][1]:.1f} s |")
    print(f"| forked from warm processes (default) | {med['on'][0]:.1f} s | {med['on'][1]:.1f} s |")
    print(f"| **ratio warm / new** | **{med['on'][0] / med['off'][0]:.2f}x** | "
          f"**{med['on'][1] / med['off'][1]:.2f}x** |")
    print(f"measuring time saved per model: {(med['off'][1] - med['on'][1]) / models:.1f} s")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "warm_start.json").write_text(json.dumps(
        {"machine": machine(), "recipes": recipes, "rounds": args.rounds,
         "runs": {w: [{"whole_s": a, "measuring_s": b} for a, b in ts] for w, ts in times.items()},
         "median": {w: {"whole_s": a, "measuring_s": b} for w, (a, b) in med.items()}}, indent=2))


if __name__ == "__main__":
    main()
