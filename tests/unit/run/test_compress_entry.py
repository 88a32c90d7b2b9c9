"""The compression stage under the control plane: a SIGTERM stops it at once, except while it
registers (then it finishes); an earlier attempt's work folder is moved aside, never deleted."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from llmos.run.compress import StopOrHold, Stopped, fresh_output


@pytest.fixture
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):  # the handler runs between bytecodes of the main thread
        pass


def test_sigterm_outside_the_hold_stops_at_once(restore_signals) -> None:
    stop = StopOrHold().install()
    with pytest.raises(Stopped):
        _sigterm()
    assert stop.stopped and stop.signal == signal.SIGTERM
    _sigterm()  # a second signal while stopping does not interrupt the clean-up
    assert stop.stopped


def test_sigterm_inside_the_hold_lets_the_job_finish(restore_signals) -> None:
    stop = StopOrHold().install()
    done = []
    with stop.hold():
        _sigterm()
        done.append("registered")
    done.append("report written")
    _sigterm()  # after registering, nothing stops it either: the job is done
    assert done == ["registered", "report written"] and not stop.stopped and stop.signal == signal.SIGTERM


def test_an_earlier_attempts_folder_is_moved_aside(tmp_path: Path) -> None:
    out = tmp_path / "reviews-7"
    assert fresh_output(out) is None  # nothing there: the first attempt
    out.mkdir()
    assert fresh_output(out) is None  # empty: nothing to keep
    (out / "children").mkdir()
    (out / "children" / "int8.bin").write_text("x")
    first = fresh_output(out, now_s=0.0)
    out.mkdir()
    (out / "report.json").write_text("{}")
    second = fresh_output(out, now_s=0.0)  # same second: a suffix keeps both
    assert first is not None and second is not None and first != second and not out.exists()
    assert (first / "children" / "int8.bin").read_text() == "x" and (second / "report.json").is_file()
    assert first.name.startswith("reviews-7.attempt-") and second.name.endswith("-2")
