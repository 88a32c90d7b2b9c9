"""The Python API's documented example, run word for word: docs/python-api.md's first Python
block trains, registers, compresses, serves and queues a job against a real daemon."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration._util import llmos

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def documented_example() -> str:
    section = DOC.read_text().split("## A complete example", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S)[1]


def test_the_documented_example_runs(tmp_path: Path, llmos_home: Path, sentiment_csv: tuple[Path, Path]) -> None:
    (tmp_path / "data").mkdir()
    shutil.copy(sentiment_csv[0], tmp_path / "data" / "train.csv")
    shutil.copy(sentiment_csv[1], tmp_path / "data" / "test.csv")
    llmos("up", "--port", "0", "--cpus", "2", timeout_s=120)
    try:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        run = subprocess.run([sys.executable, "-c", documented_example()], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=600)
    finally:
        llmos("down", "--timeout-s", "60", check=False, timeout_s=90)
        info = llmos_home / "control" / "daemon.json"
        if info.exists():  # never leave a daemon behind
            import json

            os.kill(json.loads(info.read_text())["pid"], signal.SIGKILL)
    assert run.returncode == 0, run.stdout + run.stderr
    said = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in run.stdout.splitlines()
            if line.split(":", 1)[0] in ("trained", "compressed", "served", "job", "jobs", "models")}
    assert said["trained"].startswith("succeeded reviews@candidate accuracy "), said
    assert said["compressed"] == "[('bf16', '2')]", said
    assert said["served"] in ("1 positive", "1 negative"), said  # version 1 answers with a label of its data
    assert (said["job"], said["jobs"], said["models"]) == ("SUCCEEDED hi", "['hello']", "['reviews']"), said
