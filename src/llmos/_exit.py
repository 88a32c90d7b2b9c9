"""How llmos's own processes end: without CPython's last garbage collection, and, once they joined a
torch process group, without tearing anything down.

A process that has loaded torch, transformers and MLflow tracks some 600,000 objects in the cyclic
garbage collector, and CPython's shutdown walks them all once more only to free memory the
operating system takes back anyway: about 2 s of one core at the end of every training, serving
or measuring process, and ~0.5 s at the end of a CLI command that opened the tracking store.
Each entrypoint calls `skip_collection_at_exit()` first. The atexit handlers still run (in their
usual order: this one, registered first, runs last), open files are still flushed and closed, and
objects made after the freeze are still collected; what is skipped is the collector's walk over
everything that was alive when the program ended (and so the freeing of cycles among those, which
the end of the process frees).

A process that joined a torch process group (`llmos.run._dist`) must not free it: the teardown can
deadlock with gloo's threads (explained there). Its entrypoint runs through `run_main`, which ends
such a process with `os._exit` once the atexit handlers have run and its output is flushed.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

__all__ = ["end_without_teardown", "run_main", "skip_collection_at_exit"]

_registered = False
_no_teardown = False


def skip_collection_at_exit() -> None:
    """At exit, move every object alive to the collector's permanent generation (gc.freeze)."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True


def end_without_teardown() -> None:
    """From now on `run_main` ends this process by os._exit (a torch process group is joining)."""
    global _no_teardown
    _no_teardown = True


def run_main(main: Callable[[], int]) -> NoReturn:
    """Run an entrypoint's `main` and exit with its status, as `sys.exit(main())` does; after
    `end_without_teardown`, by os._exit once the atexit handlers have run (MLflow's and logging's
    flushes among them) and stdout and stderr are flushed. An uncaught exception still prints its
    traceback and exits 1."""
    try:
        code = main()
    except SystemExit as exc:
        if not _no_teardown:
            raise
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:
        if not _no_teardown:
            raise
        traceback.print_exc()
        code = 1
    if not _no_teardown:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
