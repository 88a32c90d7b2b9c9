"""Where the test suite's CPU time goes: the README's test command under the kernel's process
accounting, every process that ran summed by what it was.

Each process that ends is accounted by the kernel (BSD process accounting: its CPU time, parent and
command name, whatever started it: Python, Ray's C++ daemons, PostgreSQL's backends, Chromium). The
Python ones also write their command line at start-up (a `sitecustomize` put first on PYTHONPATH for
the run), so they are grouped by program (`-m llmos.run`, `llmos up`, a fork server); a process forked
without exec is counted under the program it was forked from. Needs root and `accton` (Debian's
`acct` package). Prints the table and writes benchmarks/out/suite_cost.json.

    sudo python benchmarks/suite_cost.py                       # the README's command
    sudo python benchmarks/suite_cost.py -- -n 0 tests/unit    # other pytest arguments
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, REPO, cpu_kind

README_ARGS = ["-q", "-n", "logical", "--dist", "loadgroup"]
LOG_VAR = "SUITE_COST_ARGV_LOG"
HOOK = f'''import os, sys, time
try:
    with open(os.environ["{LOG_VAR}"], "a") as f:
        f.write(repr((os.getpid(), os.getppid(), time.time(), sys.orig_argv[:8])) + "\\n")
except Exception:
    pass
'''


def run(pytest_args: list[str], work: Path) -> tuple[float, int]:
    (work / "hook").mkdir()
    (work / "hook" / "sitecustomize.py").write_text(HOOK)
    pacct, argv_log = work / "pacct", work / "argv.log"
    pacct.touch()
    env = {**os.environ, LOG_VAR: str(argv_log),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(work / "hook"), os.environ.get("PYTHONPATH")]))}
    env.setdefault("LLMOS_HOME", tempfile.mkdtemp(prefix="llmos-home-"))
    subprocess.run(["accton", str(pacct)], check=True, stdout=subprocess.DEVNULL)
    start = time.perf_counter()
    try:
        code = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=REPO, env=env).returncode
        wall_s = time.perf_counter() - start
        _wait_for_fork_servers()  # the run's end their socket folder; they notice within 30 s
    finally:
        subprocess.run(["accton", "off"], stdout=subprocess.DEVNULL)
    return wall_s, code


def _wait_for_fork_servers(limit_s: float = 45.0) -> None:
    """A process is accounted when it ends: wait (a while) for the run's fork servers to."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        alive = False
        for entry in Path("/proc").iterdir():
            try:
                alive |= entry.name.isdigit() and b"llmos._forkserver" in (entry / "cmdline").read_bytes()
            except OSError:
                continue
        if not alive:
            return
        time.sleep(1)


def label(argv: list[str]) -> str:
    """A program's name from its command line: `-m MODULE`, a script's name, or `-c`."""
    words = [w for w in argv[1:] if w not in ("-u", "-B", "-X", "-E", "-s")]
    if not words:
        return "python"
    if words[0] == "-m" and len(words) > 1:
        module = words[1]
        extra = words[2] if module in ("llmos", "llmos.cli.main") and len(words) > 2 else ""
        return f"-m {module} {extra}".strip()
    if words[0] == "-c":
        code = words[1] if len(words) > 1 else ""
        if "exec(eval(sys.stdin.readline()))" in code:
            return "pytest-xdist worker (the tests' own work)"
        return "python -c " + " ".join(code.split())[:40]
    name = Path(words[0]).name
    sub = words[1] if name in ("llmos", "ray", "mlflow") and len(words) > 1 else ""
    return f"{name} {sub}".strip()


def account(work: Path) -> dict[str, dict[str, float]]:
    dump = subprocess.run(["dump-acct", str(work / "pacct")], capture_output=True, text=True, check=True).stdout
    procs: dict[int, dict] = {}
    for line in dump.splitlines():
        f = [x.strip() for x in line.split("|")]
        # comm | version | utime | stime | elapsed | uid | gid | mem | io | pid | ppid | ... (1/100 s)
        procs[int(f[9])] = {"comm": f[0], "cpu": (float(f[2]) + float(f[3])) / 100, "ppid": int(f[10])}
    argv: dict[int, tuple[int, str]] = {}
    if (work / "argv.log").exists():
        for line in (work / "argv.log").read_text().splitlines():
            pid, ppid, _, words = ast.literal_eval(line)
            argv[pid] = (ppid, label(list(words)))
    rows: dict[str, dict[str, float]] = collections.defaultdict(lambda: {"cpu_s": 0.0, "processes": 0})

    def program(pid: int) -> str | None:
        for _ in range(64):  # a fork without exec: the program it came from
            if pid in argv:
                return argv[pid][1]
            if pid not in procs or procs[pid]["ppid"] in (0, pid):
                return None
            pid = procs[pid]["ppid"]
        return None

    for pid, p in procs.items():
        if pid in argv:
            key = argv[pid][1]
        else:
            origin = program(pid)
            key = f"forked from {origin}" if origin else f"[{p['comm']}]"
        rows[key]["cpu_s"] += p["cpu"]
        rows[key]["processes"] += 1
    return dict(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=40, help="rows to print")
    parser.add_argument("pytest_args", nargs="*", help="after --: pytest's arguments (default: the README's)")
    args = parser.parse_args()
    if os.geteuid() != 0 or not shutil.which("accton") or not shutil.which("dump-acct"):
        raise SystemExit("suite_cost.py needs root and the acct package (accton, dump-acct): apt-get install acct")
    work = Path(tempfile.mkdtemp(prefix="suite-cost-"))
    try:
        wall_s, code = run(args.pytest_args or README_ARGS, work)
        rows = account(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = sum(r["cpu_s"] for r in rows.values())
    cores = len(os.sched_getaffinity(0))
    print(f"\n{cpu_kind()}, {cores} cores: pytest exited {code} after {wall_s:.0f} s; {total:.0f} CPU s in "
          f"{sum(int(r['processes']) for r in rows.values())} processes ({total / (wall_s * cores):.0%} of "
          f"{cores} cores)")
    print(f"{'CPU s':>8} {'share':>6} {'procs':>6}  program")
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["cpu_s"])[:args.top]:
        print(f"{r['cpu_s']:8.1f} {r['cpu_s'] / total:6.1%} {int(r['processes']):6d}  {name}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "suite_cost.json").write_text(json.dumps({"cpu": cpu_kind(), "cores": cores, "wall_s": wall_s,
                                                     "exit_code": code, "cpu_s": total, "programs": rows}, indent=1))
    sys.exit(code)


if __name__ == "__main__":
    main()
