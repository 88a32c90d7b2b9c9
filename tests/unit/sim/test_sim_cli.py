"""`llmos sim run` and `llmos sim generate` through the real CLI app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmos.cli.main import app
from llmos.scheduler import SchedulerError
from llmos.sim import TraceError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "sim"
TRACE, CLUSTER, OWNERS = (EXAMPLES / n for n in ("tiny-trace.csv", "cluster-64gpu.csv", "owners-4teams.csv"))
runner = CliRunner()


def test_run_prints_tables_and_writes_json_and_plots(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sim", "run", "--trace", str(TRACE), "--cluster", str(CLUSTER),
                                 "--owners", str(OWNERS), "--policy", "fifo,full",
                                 "--json", str(tmp_path / "r.json"), "--plots", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    assert "JCT mean" in result.output and "too-big" in result.output
    reports = json.loads((tmp_path / "r.json").read_text())["reports"]
    assert [r["policy"] for r in reports] == ["fifo", "full"]
    assert (tmp_path / "plots" / "jct_cdf.png").is_file()


def test_generate_then_run(tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    result = runner.invoke(app, ["sim", "generate", "--jobs", "40", "--load", "0.9", "--cluster", str(CLUSTER),
                                 "--out", str(out), "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "wrote 40 jobs" in result.output and "llmos sim run" in result.output
    result = runner.invoke(app, ["sim", "run", "--trace", str(out), "--cluster", str(CLUSTER)])
    assert result.exit_code == 0, result.output
    assert "--policy fifo,full" in result.output


def test_user_errors_raise_llmos_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sim", "run", "--trace", str(TRACE), "--cluster", str(CLUSTER),
                                 "--policy", "sjf"])
    assert isinstance(result.exception, SchedulerError)
    bad = tmp_path / "bad.csv"
    bad.write_text(TRACE.read_text().replace("c-sweep-2,610,3600", "c-sweep-2,610,-3600"))
    result = runner.invoke(app, ["sim", "run", "--trace", str(bad), "--cluster", str(CLUSTER)])
    assert isinstance(result.exception, TraceError) and "row 10, column duration_s" in str(result.exception)


@pytest.mark.parametrize("argv", [["--trace", "missing.csv", "--cluster", str(CLUSTER)]])
def test_the_real_command_prints_the_error_without_a_traceback(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "llmos.cli.main", "sim", "run", *argv],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "trace file 'missing.csv' does not exist" in proc.stderr and "Traceback" not in proc.stderr
