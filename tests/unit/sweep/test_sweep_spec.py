"""The `kind: sweep` spec: every problem at once at its dotted path, ints vs floats, the trial specs."""

from __future__ import annotations

import pytest
import yaml

from llmos.errors import SpecError
from llmos.spec import SweepJob, example_yaml, parse_job, trial_job

BASE = {"data": {"train": "/d/train.csv", "eval": "/d/test.csv"}, "train": {"max_steps": 10}}


def sweep(**fields) -> SweepJob:
    return parse_job({"kind": "sweep", "base": BASE, "params": {"train.lr": {"log_range": [1e-5, 1e-3]}},
                      **fields})  # type: ignore[return-value]


def test_the_example_validates_and_every_field_is_commented() -> None:
    text = example_yaml("sweep")
    job = parse_job(yaml.safe_load(text))
    assert isinstance(job, SweepJob) and job.registration.alias == "best"  # type: ignore[union-attr]
    assert "# stop unpromising trials early" in text and "# the sampler's seed" in text
    assert set(job.params) == {"train.lr", "train.batch_size", "train.warmup_ratio"}


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    with pytest.raises(SpecError) as info:
        sweep(params={"train.lr": {"range": [1e-3, 1e-5]}, "train.batch_size": {"log_range": [0, 8]},
                      "train.seed": {"range": [1, 2], "choices": [1]}}, max_parallel=0, sampler="bayes")
    problems = dict(info.value.problems)
    assert "low must be below high" in problems["params.train.lr"]
    assert "log_range needs low > 0" in problems["params.train.batch_size"]
    assert "exactly one of" in problems["params.train.seed"]
    assert "max_parallel" in problems and "sampler" in problems
    # Once each field is well formed, the searched paths are checked against the train spec, all at once.
    with pytest.raises(SpecError) as info:
        sweep(params={"train.nope": {"range": [1, 2]}, "train.epochs": {"range": [0, 2]}, "name": {"choices": ["a"]}})
    problems = dict(info.value.problems)
    assert "not a train-spec field" in problems["params.train.nope"]
    assert "the value 0 makes an invalid trial" in problems["params.train.epochs"]
    assert "cannot be searched" in problems["params.name"]


def test_grid_needs_choices_and_register_needs_a_logged_model() -> None:
    with pytest.raises(SpecError) as info:
        sweep(sampler="grid", register={"name": "m", "alias": "best"},
              base={**BASE, "tracking": {"log_model": False}})
    problems = dict(info.value.problems)
    assert "grid sampler needs choices" in problems["params.train.lr"]
    assert "base.tracking.log_model" in problems["register"]


def test_whole_number_bounds_sample_whole_numbers() -> None:
    job = sweep(params={"train.batch_size": {"range": [8, 32], "step": 8}, "train.warmup_ratio": {"range": [0, 0.2]},
                        "train.lr": {"log_range": [1e-5, 1e-3]}})
    assert job.params["train.batch_size"].is_int
    assert not job.params["train.warmup_ratio"].is_int and not job.params["train.lr"].is_int


def test_a_trial_is_the_base_with_its_values_under_its_own_name_and_folder() -> None:
    job = sweep(name="s", register={"name": "m", "alias": "best"}, base={**BASE, "register": {"name": "x"}})
    trial = trial_job(job, 3, {"train.lr": 2e-4, "model.max_length": 64}, output="/runs/s/t3")
    assert (trial.name, str(trial.output), trial.train.lr, trial.model.max_length) == ("s-t3", "/runs/s/t3", 2e-4, 64)
    assert trial.registration is None and trial.tracking.log_model  # the sweep registers the best one itself
    assert trial.train.max_steps == 10 and str(trial.data.train) == "/d/train.csv"
