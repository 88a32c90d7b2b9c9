"""A model measured in a process forked from the warm measuring server (the default) gets the
figures a fresh process gives it, and a failed measurement reads the same either way."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.compress.compress_helpers import make_parent

from llmos import _forkserver
from llmos.compress._report import measure
from llmos.errors import LlmosError
from llmos.spec import parse_job


def _job_and_data(tmp_path: Path) -> tuple[Any, Any, Any]:  # (Parent, CompressJob, CompressData)
    from transformers import AutoTokenizer

    from llmos.compress._data import load_data

    parent = make_parent(tmp_path / "parent")
    eval_csv = tmp_path / "eval.csv"
    with eval_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([[f"a {'good' if i % 2 else 'dull'} film number {i}", i % 2] for i in range(16)])
    job = parse_job({"kind": "compress", "model": "s/1", "recipe": ["bf16"], "eval": str(eval_csv),
                     "report": {"seq_len": 8, "num_threads": 1, "latency_runs": 2, "throughput_batches": 1,
                                "warmup": 1, "compile": "never"}})
    return parent, job, load_data(job, parent, AutoTokenizer.from_pretrained(str(parent.folder)))  # type: ignore[arg-type]


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Fork servers of this test's own (a short path: a socket's), ended with it: a server ends
    within half a minute once its socket is gone."""
    folder = Path(tempfile.mkdtemp(prefix="llmos-test-"))
    monkeypatch.setenv("LLMOS_RUNTIME_DIR", str(folder))
    yield folder
    shutil.rmtree(folder)


@pytest.mark.timeout(300)
def test_warm_and_fresh_measurements_agree_and_a_failure_says_where_its_output_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: Path) -> None:
    parent, job, data = _job_and_data(tmp_path)
    rows = {}
    for mode in ("off", "on"):  # off: LLMOS_WARM_START=off, and what runs when no server can start
        monkeypatch.setenv("LLMOS_WARM_START", mode)
        work = tmp_path / f"measure-{mode}"
        work.mkdir()
        rows[mode] = measure(parent.folder, job=job, data=data, work_dir=work, label="parent",  # type: ignore[arg-type]
                             fmt="hf-safetensors", served=False)
        servers = list(runtime.glob("llmos-warm-*/*.sock"))
        key = _forkserver.server_key("llmos.compress._measure", {**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        assert [p.stem for p in servers] == ([key] if mode == "on" else [])  # the one it was forked from
        assert "Loading weights" in (work / "measure-parent.log").read_text()  # the program's output, kept
    warm, fresh = rows["on"], rows["off"]
    assert warm["metrics"] == fresh["metrics"]  # the same eval rows through the same weights
    assert (warm["params"], warm["size_mb"], warm["threads"], warm["compiled"]) == \
        (fresh["params"], fresh["size_mb"], fresh["threads"], fresh["compiled"])
    assert warm["threads"] == 1 and warm["throughput"] > 0 and warm["latency_p50_ms"] > 0

    with pytest.raises(LlmosError) as failed:
        measure(tmp_path / "no-such-model", job=job, data=data, work_dir=tmp_path / "measure-on",  # type: ignore[arg-type]
                label="missing", fmt="hf-safetensors", served=False)
    assert str(failed.value).startswith("measuring missing failed (exit 1):")
    assert "no-such-model" in str(failed.value)  # the program's own last lines
    assert str(tmp_path / "measure-on" / "measure-missing.log") in (failed.value.hint or "")
