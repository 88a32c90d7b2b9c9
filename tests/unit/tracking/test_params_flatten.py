"""A resolved job as MLflow params: dotted keys, JSON spelling, MLflow's length limits."""

from __future__ import annotations

from llmos.tracking._params import MAX_KEY_CHARS, MAX_PARAM_CHARS, flatten


def test_nested_job_becomes_dotted_keys() -> None:
    job = {"name": "sst2", "train": {"lr": 5e-5, "betas": [0.9, 0.999], "early_stop": None,
                                     "group_by_length": True}, "data": {"header": {}}}
    assert flatten(job) == {
        "name": "sst2",
        "train.lr": "5e-05",
        "train.betas": "[0.9, 0.999]",
        "train.early_stop": "null",
        "train.group_by_length": "true",
        "data.header": "{}",
    }


def test_long_values_and_keys_fit_mlflow_limits() -> None:
    flat = flatten({"data": {"labels": ["x" * 100] * 100}, "k" * 300: 1})
    assert len(flat["data.labels"]) == MAX_PARAM_CHARS
    assert flat["data.labels"].endswith("...")
    assert all(len(k) <= MAX_KEY_CHARS for k in flat)


def test_keys_lose_characters_mlflow_refuses() -> None:
    assert flatten({"data": {"col(1)": "a"}}) == {"data.col_1_": "a"}


def test_non_json_values_are_spelled_with_str() -> None:
    from pathlib import Path

    assert flatten({"output": Path("/tmp/run")}) == {"output": "/tmp/run"}
