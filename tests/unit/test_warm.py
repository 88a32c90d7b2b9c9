"""llmos._warm: programs forked from a warm process run as `python -m` would run them, each in a
fresh process of its own, with the role's OpenMP settings; failures, timeouts and a lost zygote
are told apart. (The compression's measurements through it: tests/unit/compress/test_warm_measure.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llmos._warm import Zygote, ZygoteError

PROGRAM = textwrap.dedent("""
    import json, os, signal, sys
    import probe_state  # a module of the test's folder: each program must find it unchanged
    probe_state.count += 1
    out = {"name": __name__, "argv": sys.argv[1:], "cwd": os.getcwd(), "pid": os.getpid(),
           "count": probe_state.count, "spin": os.environ.get("GOMP_SPINCOUNT"),
           "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
           "stdin": sys.stdin.read()}
    print("to stdout")
    print("to stderr", file=sys.stderr)
    open(sys.argv[1], "w").write(json.dumps(out))
    if len(sys.argv) > 2:
        if sys.argv[2] == "raise":
            raise ValueError("broken on purpose")
        if sys.argv[2] == "sleep":
            import time
            time.sleep(60)
        sys.exit(int(sys.argv[2]))
""")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "probe_program.py").write_text(PROGRAM)
    (tmp_path / "probe_state.py").write_text("count = 0\n")
    return tmp_path


def _run(z: Zygote, folder: Path, *args: str, timeout_s: float = 60) -> tuple[int, dict, str]:
    out, log = folder / "out.json", folder / "log.txt"
    out.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    code = z.run("probe_program", [str(out), *args], stdout=log, stderr=log, timeout_s=timeout_s, cwd=folder)
    return code, json.loads(out.read_text()) if out.exists() else {}, log.read_text() if log.exists() else ""


def test_programs_run_as_python_m_each_in_a_fresh_process(folder: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "LLMOS_OPENMP_ROLE")}
    env["PYTHONPATH"] = str(folder)
    with Zygote("server", ["json", "probe_state"], env) as z:  # the state module imported once, up front
        first = _run(z, folder)
        second = _run(z, folder)
    for code, out, log in (first, second):
        assert code == 0
        assert out["name"] == "__main__" and out["cwd"] == str(folder) and out["stdin"] == ""
        assert out["count"] == 1  # nothing the first program did is seen by the second
        assert out["spin"] == "10000" and out["sigint"]  # the server role's OpenMP settings; Ctrl-C as usual
        assert "to stdout" in log and "to stderr" in log
    assert first[1]["pid"] != second[1]["pid"] != os.getpid()


def test_exit_codes_and_tracebacks_are_the_programs_own(folder: Path) -> None:
    with Zygote("batch", [], None) as z:
        assert _run(z, folder, "3")[0] == 3
        code, _, log = _run(z, folder, "raise")
        assert code == 1 and "ValueError: broken on purpose" in log
        assert _run(z, folder, "0")[0] == 0  # the zygote goes on after a failure


def test_a_program_over_its_time_is_killed_and_the_zygote_goes_on(folder: Path) -> None:
    with Zygote("batch", [], None) as z:
        started = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            _run(z, folder, "sleep", timeout_s=2)
        assert time.monotonic() - started < 30
        assert _run(z, folder)[0] == 0


def test_a_zygote_killed_under_its_program_is_not_taken_for_the_programs_exit(folder: Path) -> None:
    z = Zygote("batch", [], None)
    z.wait_ready()
    os.kill(z._proc.pid, signal.SIGKILL)  # as a stop to the process group would, but the zygote only
    z._proc.wait()
    with pytest.raises(ZygoteError) as never_started:
        _run(z, folder)
    assert not never_started.value.program_started  # the program never ran: a fresh process may run it
    z.close()

    z = Zygote("batch", [], None)
    z.wait_ready()
    import threading

    threading.Timer(2.0, os.kill, (z._proc.pid, signal.SIGKILL)).start()
    with pytest.raises(ZygoteError) as lost:
        _run(z, folder, "sleep")
    assert lost.value.program_started
    os.kill(json.loads((folder / "out.json").read_text())["pid"], signal.SIGKILL)  # the orphan a group stop ends
    z.close()


def test_a_preload_that_cannot_import_says_so() -> None:
    z = Zygote("batch", ["json", "no_such_module_here"], None)
    with pytest.raises(ZygoteError, match="no_such_module_here"):
        z.wait_ready()


def test_the_zygote_ends_with_its_caller(folder: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parents[2] / "src")!r})
        from llmos._warm import Zygote
        z = Zygote("batch", [], None)
        z.wait_ready()
        print(z._proc.pid, flush=True)
        import os
        os._exit(0)  # no close(): the caller just goes away
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    pid = int(out.stdout.split()[-1])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{pid}/stat").is_file() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return  # ended; its parent (gone) never reaped it
        time.sleep(0.1)
    pytest.fail(f"the zygote {pid} outlived its caller")
