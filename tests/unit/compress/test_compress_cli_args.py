"""`llmos compress` flags become spec keys: the same validation, the same words in errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.cli.compress import _job
from llmos.errors import SpecError

NO_FLAGS = {"recipe": None, "eval_data": None, "calib": None, "train": None, "gate": None, "alias": None,
            "name": None, "output": None}


def test_flags_build_the_same_job_as_a_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = _job("reviews@candidate", ["report.batch_size=8"],
               **{**NO_FLAGS, "recipe": ["int8", "int4-weight:group_size=64"], "eval_data": "dev.csv",
                  "gate": "max_metric_drop=0.5,min_speedup=1.5", "alias": "fast", "name": "reviews-small"})
    assert job.model == "reviews@candidate" and [r.label for r in job.recipe] == ["int8", "int4-weight:group_size=64"]
    assert job.eval == str(tmp_path / "dev.csv") and job.alias == "fast" and job.name == "reviews-small"
    assert (job.gate.max_metric_drop, job.gate.min_speedup) == (0.5, 1.5) and job.report.batch_size == 8

    spec = tmp_path / "job.yaml"
    spec.write_text("kind: compress\nmodel: reviews/1\nrecipe: [bf16]\neval: dev.csv\n")
    from_file = _job(str(spec), [], **{**NO_FLAGS, "alias": "fast", "recipe": ["onnx-int8"]})
    assert from_file.model == "reviews/1" and [r.name for r in from_file.recipe] == ["onnx-int8"]
    assert from_file.alias == "fast" and from_file.eval == str(tmp_path / "dev.csv")


def test_flag_errors_name_the_spec_key() -> None:
    with pytest.raises(SpecError) as err:
        _job("reviews", [], **{**NO_FLAGS, "recipe": ["int8"], "gate": "min_speed=2", "alias": "1bad"})
    paths = dict(err.value.problems)
    assert "did you mean 'min_speedup'" in paths["gate.min_speed"] and "alias" in paths
