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
