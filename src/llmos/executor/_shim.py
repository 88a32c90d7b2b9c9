"""The supervisor of one attempt: `python _shim.py ATTEMPT_DIR CORES -- PROGRAM ARGS...`.

The executor starts this file (by path, so that it imports nothing but the standard library) in
a session of its own. It pins itself to CORES (inherited by the program and every worker it
starts), runs the program, passes SIGTERM and SIGINT on, and writes `exit.json` when the program
ends. The file outlives the daemon: a daemon restarted after a crash reads how an attempt it
could not wait for ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    attempt_dir, cores, sep, *command = argv
    if sep != "--" or not command:
        print("usage: _shim.py ATTEMPT_DIR CORES -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cores.split(",")})
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"error: cannot start {command[0]!r}: {exc}", file=sys.stderr, flush=True)
        _record(attempt_dir, 127)
        return 127

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = child.wait()
    _record(attempt_dir, code)
    return code if code >= 0 else 128 - code


def _record(attempt_dir: str, code: int) -> None:
    path = os.path.join(attempt_dir, "exit.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"exit_code": code, "ended_s": time.time()}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
