"""The `kind: compress` spec: recipe strings, parameters, the gate, and errors before any work."""

from __future__ import annotations

import pytest
import yaml

from llmos.errors import SpecError
from llmos.spec import CompressJob, example_yaml, parse_job

BASE = {"kind": "compress", "model": "sentiment@candidate", "eval": "dev.csv"}


def _job(**extra: object) -> CompressJob:
    return parse_job({**BASE, **extra})  # type: ignore[return-value]


def test_recipes_as_strings_or_mappings() -> None:
    job = _job(recipe=["int8", "int4-weight:group_size=64", {"name": "onnx-int8", "params": {"per_channel": False}}])
    assert [r.name for r in job.recipe] == ["int8", "int4-weight", "onnx-int8"]
    assert job.recipe[1].params == {"group_size": 64} and job.recipe[1].label == "int4-weight:group_size=64"
    assert job.recipe[1].typed_params().group_size == 64  # type: ignore[attr-defined]
    assert job.recipe[2].typed_params().per_channel is False  # type: ignore[attr-defined]
    assert _job(recipe="bf16").recipe[0].label == "bf16"  # one recipe need not be a list


def test_every_problem_at_once_with_did_you_mean() -> None:
    with pytest.raises(SpecError) as err:
        _job(recipe=["int9", "int4-weight:group_size=48", "onnx-int8:fast=1", "bf16:x"],
             gate={"min_speedup": -1, "max_metric_dorp": 0.5})
    paths = dict(err.value.problems)
    assert "did you mean 'int8'" in paths["recipe.0"]
    assert "group_size" in paths["recipe.1"] and "48" in paths["recipe.1"]
    assert "fast: unknown parameter" in paths["recipe.2"]
    assert "not key=value" in paths["recipe.3"]
    assert "greater than 0" in paths["gate.min_speedup"]
    assert "did you mean 'max_metric_drop'" in paths["gate.max_metric_dorp"]


def test_a_recipe_twice_and_tracking_off_are_refused() -> None:
    with pytest.raises(SpecError, match="int8 more than once"):
        _job(recipe=["int8", "int8"])
    with pytest.raises(SpecError, match="registers every child"):
        _job(recipe=["int8"], tracking={"enabled": False})
    with pytest.raises(SpecError, match="recipe"):
        _job(recipe=[])


def test_overrides_and_paths(tmp_path: object) -> None:
    job = parse_job({**BASE, "recipe": ["int8"]}, ["gate.max_size_ratio=0.5", "alias=candidate", "calib=hf:sst2"])
    assert job.gate.max_size_ratio == 0.5 and job.alias == "candidate"  # type: ignore[attr-defined]
    assert job.calib == "hf:sst2"  # type: ignore[attr-defined]  # hf: references are not paths
    assert job.eval.endswith("/dev.csv")  # type: ignore[attr-defined]  # resolved against the cwd


def test_example_spec_is_valid() -> None:
    text = example_yaml("compress")
    raw = yaml.safe_load(text)
    assert raw["kind"] == "compress" and raw["recipe"]
    job = parse_job(raw)
    assert isinstance(job, CompressJob) and job.gate is not None
