"""llmos's processes end without CPython's last garbage-collector walk, and nothing else changes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_exit_handlers_still_run_the_code_is_kept_and_the_objects_are_frozen_at_the_end(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    program = textwrap.dedent(f"""
        import atexit, gc, sys
        # registered before: runs after llmos's handler, so it sees the objects frozen
        atexit.register(lambda: open({str(out)!r}, "a").write(f"frozen={{gc.get_freeze_count() > 1000}}\\n"))
        from llmos._exit import skip_collection_at_exit
        skip_collection_at_exit()
        skip_collection_at_exit()  # once is enough: a second call registers nothing more
        atexit.register(lambda: open({str(out)!r}, "a").write("later handler ran\\n"))
        log = open({str(out)!r}, "a")
        log.write("buffered, never closed\\n")  # flushed at exit as before
        sys.exit(3)
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert out.read_text().splitlines() == ["later handler ran", "frozen=True", "buffered, never closed"]


def test_a_process_that_joined_a_process_group_ends_after_its_handlers_without_tearing_down(tmp_path: Path) -> None:
    """After end_without_teardown, run_main ends the process by os._exit: the atexit handlers run and
    the output is flushed, but nothing that could block (here a thread that never ends, as gloo's do
    when its teardown deadlocks) holds the exit up; an exception still shows its traceback."""
    out = tmp_path / "out.txt"
    program = textwrap.dedent(f"""
        import atexit, sys, threading
        from llmos._exit import end_without_teardown, run_main
        atexit.register(lambda: open({str(out)!r}, "a").write("handler ran\\n"))

        def main():
            end_without_teardown()
            threading.Thread(target=threading.Event().wait).start()  # a normal exit would wait for it
            sys.stdout.write("no newline")
            if sys.argv[1] == "raise":
                raise RuntimeError("a peer went away")
            return 3

        run_main(main)
    """)
    done = subprocess.run([sys.executable, "-c", program, "return"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (3, "no newline"), done.stderr
    assert out.read_text() == "handler ran\n"
    done = subprocess.run([sys.executable, "-c", program, "raise"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "RuntimeError: a peer went away" in done.stderr, done.stderr
    assert out.read_text() == "handler ran\nhandler ran\n"
