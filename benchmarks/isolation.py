"""What job isolation costs at start (issue 14.1): the attempt supervisor (`executor/_shim.py`)
starting `/bin/true` as the daemon's user, and the same inside the `users` sandbox (as the
project's user, in a mount namespace with control/ hidden). Root only.

    flock /tmp/llmos-bench.lock .venv/bin/python benchmarks/isolation.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _time(argv: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the users sandbox needs root")
    home = Path(tempfile.mkdtemp(prefix="llmos-bench-home-"))
    os.environ["LLMOS_HOME"] = str(home)
    from llmos.control._isolation import prepare_home
    from llmos.executor._jobuser import attempt_sandbox

    prepare_home(home, "users")
    attempt = home / "control" / "jobs" / "1" / "attempt-1"
    attempt.mkdir(parents=True)
    plan = attempt_sandbox("users", "bench", attempt, None).to_json()
    shim = str(Path(__file__).parents[1] / "src" / "llmos" / "executor" / "_shim.py")
    plain = _time([sys.executable, shim, str(attempt), "", "--", "/bin/true"], args.runs)
    isolated = _time([sys.executable, shim, str(attempt), "", plan, "--", "/bin/true"], args.runs)
    for name, ms in (("plain", plain), ("users sandbox", isolated)):
        print(f"{name:14s} median {statistics.median(ms):6.1f} ms  p90 {sorted(ms)[int(0.9 * len(ms))]:6.1f} ms  "
              f"({len(ms)} starts)")
    print(f"isolation adds {statistics.median(isolated) - statistics.median(plain):.1f} ms per attempt (median)")
    subprocess.run(["rm", "-rf", str(home)], check=True)


if __name__ == "__main__":
    main()
