"""What each spec choice becomes in Optuna: distributions, samplers, pruners."""

from __future__ import annotations

import optuna
import pytest

from llmos.spec import ParamSpec, parse_job
from llmos.sweep._study import _distribution, _pruner, _sampler


def test_distributions_follow_the_spec() -> None:
    d = optuna.distributions
    assert _distribution(ParamSpec(range=(8, 32), step=8)) == d.IntDistribution(8, 32, step=8)
    assert _distribution(ParamSpec(log_range=(1, 1024))) == d.IntDistribution(1, 1024, log=True)
    assert _distribution(ParamSpec(range=(0, 0.3))) == d.FloatDistribution(0.0, 0.3)
    assert _distribution(ParamSpec(log_range=(1e-5, 1e-3))) == d.FloatDistribution(1e-5, 1e-3, log=True)
    assert _distribution(ParamSpec(choices=["adamw", "sgd"])) == d.CategoricalDistribution(["adamw", "sgd"])


@pytest.mark.parametrize(("kind", "pruner"), [("median", optuna.pruners.MedianPruner),
                                              ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
                                              ("hyperband", optuna.pruners.HyperbandPruner),
                                              ("none", optuna.pruners.NopPruner)])
def test_each_pruner_kind(kind: str, pruner: type) -> None:
    job = parse_job({"kind": "sweep", "base": {"data": {"train": "/d/a.csv"}, "train": {"max_steps": 90}},
                     "params": {"train.lr": {"choices": [1e-4, 1e-3]}}, "sampler": "grid", "trials": 2,
                     "pruner": {"kind": kind, "min_resource": 10}})
    assert isinstance(_pruner(job), pruner)  # type: ignore[arg-type]
    assert isinstance(_sampler(job), optuna.samplers.GridSampler)  # type: ignore[arg-type]
