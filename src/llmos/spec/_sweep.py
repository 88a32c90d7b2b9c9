"""The `kind: sweep` spec: a hyper-parameter search over the fields of a base train spec.

    kind: sweep
    name: sst2-lr
    base: {data: {train: train.tsv, eval: dev.tsv}, train: {max_steps: 60, eval_every_steps: 20}}
    params:
      train.lr: {log_range: [1.0e-5, 1.0e-3]}
      train.batch_size: {choices: [16, 32]}
    metric: accuracy
    trials: 16
    max_parallel: 2
    pruner: {kind: median}
    register: {name: sentiment, alias: best}

Each trial is the base spec with its sampled values set at their dotted paths (`train.lr`), checked
like any train spec. A range whose bounds are both whole numbers samples whole numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from llmos.spec._models import RegisterSpec, TrainJob, _Strict

__all__ = ["ParamSpec", "PrunerSpec", "SweepJob", "trial_job"]

Number = int | float


class ParamSpec(_Strict):
    """One searched field: exactly one of `range`, `log_range`, `choices`."""

    range: Annotated[tuple[Number, Number] | None, Field(description=(
        "[low, high], sampled uniformly; whole-number bounds sample whole numbers"))] = None
    log_range: Annotated[tuple[Number, Number] | None, Field(description=(
        "[low, high], sampled uniformly in log space (low > 0), e.g. a learning rate"))] = None
    choices: Annotated[list[Any] | None, Field(min_length=1, description="the values to pick from")] = None
    step: Annotated[Number | None, Field(gt=0, description=(
        "sample only low + k*step (range only); null: any value"))] = None

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpec:
        given = [k for k in ("range", "log_range", "choices") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of range: [low, high], log_range: [low, high] or choices: [...]"
                             + (f", not {' and '.join(given)}" if given else ""))
        bounds = self.range or self.log_range
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"low must be below high, got {list(bounds)}")
        if self.log_range is not None and self.log_range[0] <= 0:
            raise ValueError(f"log_range needs low > 0, got {list(self.log_range)}")
        if self.step is not None and self.range is None:
            raise ValueError("step applies to range only")
        return self

    @property
    def is_int(self) -> bool:
        bounds = self.range or self.log_range
        return bounds is not None and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds) \
            and (self.step is None or isinstance(self.step, int))

    def corners(self) -> list[Any]:
        """Values that every trial's spec must accept: the bounds, or every choice."""
        return list(self.choices) if self.choices is not None else list(self.range or self.log_range)  # type: ignore[arg-type]


class PrunerSpec(_Strict):
    kind: Annotated[Literal["none", "median", "successive_halving", "hyperband"], Field(description=(
        "stop unpromising trials early: median (below the median of earlier trials at the same step), "
        "successive_halving, hyperband, or none"))] = "median"
    warmup_steps: Annotated[int, Field(ge=0, description=(
        "median: never prune at or before this training step"))] = 0
    startup_trials: Annotated[int, Field(ge=0, description=(
        "median: trials that run to the end before any is pruned"))] = 4
    min_resource: Annotated[int | None, Field(gt=0, description=(
        "successive_halving/hyperband: steps every trial gets; null: Optuna's estimate"))] = None
    reduction_factor: Annotated[int, Field(ge=2, description=(
        "successive_halving/hyperband: keep 1 in this many trials at each rung"))] = 3


class SweepJob(_Strict):
    kind: Annotated[Literal["sweep"], Field(description="what the job does")] = "sweep"
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description=(
        "sweep name; trials are NAME-t0, NAME-t1, ... and the Optuna study is llmos-NAME"))] = "sweep"
    output: Annotated[Path | None, Field(description=(
        "sweep folder (trial run folders t0, t1, ...); null: $LLMOS_HOME/runs/NAME"))] = None
    base: Annotated[TrainJob, Field(description=(
        "the train spec every trial starts from (a mapping, as in a train spec file)"))]
    params: Annotated[dict[str, ParamSpec], Field(min_length=1, description=(
        "dotted train-spec field -> what to search, e.g. train.lr: {log_range: [1.0e-5, 1.0e-3]}"))]
    metric: Annotated[str, Field(min_length=1, description=(
        "eval metric to optimise, as the trial reports it (accuracy, macro_f1, loss, ...)"))] = "accuracy"
    direction: Annotated[Literal["maximize", "minimize"], Field(description=(
        "whether a higher or a lower metric is better"))] = "maximize"
    trials: Annotated[int, Field(gt=0, le=10000, description="trials in all")] = 16
    max_parallel: Annotated[int, Field(gt=0, description="trials running (or queued) at once")] = 2
    sampler: Annotated[Literal["tpe", "random", "grid"], Field(description=(
        "tpe (Bayesian), random, or grid (every combination of `choices`)"))] = "tpe"
    seed: Annotated[int, Field(description="the sampler's seed")] = 0
    pruner: Annotated[PrunerSpec, Field(description="early stopping of unpromising trials")] = PrunerSpec()
    max_failed: Annotated[int, Field(ge=0, description=(
        "failed trials (not pruned ones) tolerated before the sweep fails"))] = 3
    # `register` would shadow a class attribute of pydantic's metaclass, hence the alias.
    registration: Annotated[RegisterSpec | None, Field(alias="register", description=(
        "register the best trial's model under this name and alias when the sweep ends"))] = None

    @model_validator(mode="after")
    def _check(self) -> SweepJob:
        problems = [(("params", path), why) for path, why in _param_problems(self)]
        if self.sampler == "grid":
            problems += [(("params", p), "the grid sampler needs choices: [...]") for p, s in self.params.items()
                         if s.choices is None]
            cells = math.prod(len(s.choices or ()) for s in self.params.values())
            if cells and self.trials > cells:
                problems.append((("trials",), f"the grid has {cells} combination(s); set trials to at most {cells}"))
        if self.registration is not None and not (self.base.tracking.enabled and self.base.tracking.log_model):
            problems.append((("register",), "needs each trial's model in MLflow: set base.tracking.enabled and "
                                            "base.tracking.log_model to true"))
        if problems:  # every problem at once, each at its own dotted path
            from pydantic import ValidationError
            from pydantic_core import InitErrorDetails, PydanticCustomError

            raise ValidationError.from_exception_data("SweepJob", [
                InitErrorDetails(type=PydanticCustomError("sweep", "{why}", {"why": why}), loc=loc, input=None)  # type: ignore[arg-type]
                for loc, why in problems])
        return self


def trial_job(sweep: SweepJob, number: int, values: dict[str, Any], output: str | None = None) -> TrainJob:
    """Trial `number`: the base spec with `values` set at their dotted paths, checked as a train spec.
    The sweep registers the best model itself, so trials register nothing."""
    data = sweep.base.model_dump(mode="json", by_alias=True)
    for path, value in values.items():
        _set(data, path, value)
    data.update({"name": f"{sweep.name}-t{number}", "register": None, "output": output})
    data["tracking"]["log_model"] = data["tracking"]["log_model"] or sweep.registration is not None
    return TrainJob.model_validate(data)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def _param_problems(sweep: SweepJob) -> list[tuple[str, str]]:
    """Each searched path must name a train-spec field that accepts every bound and choice."""
    from pydantic import ValidationError

    problems = []
    known = _leaf_paths(TrainJob)
    for path, spec in sweep.params.items():
        if path in ("kind", "name", "output") or path.split(".")[0] == "register":
            problems.append((path, "cannot be searched (trials get their own name and output)"))
            continue
        if path not in known:
            import difflib

            close = difflib.get_close_matches(path, sorted(known), n=1)
            problems.append((path, "is not a train-spec field" + (f"; did you mean '{close[0]}'?" if close else "")))
            continue
        for value in spec.corners():
            try:
                trial_job(sweep.model_construct(**{**dict(sweep), "registration": None}), 0, {path: value})
            except ValidationError as exc:
                why = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                problems.append((path, f"the value {value!r} makes an invalid trial: {why}"))
                break
    return problems


def _leaf_paths(model: Any, prefix: str = "") -> set[str]:
    from llmos.spec._load import _submodel

    paths = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        sub = _submodel(field.annotation)
        paths.add(key)  # a whole section may be searched too (choices of mappings)
        if sub is not None:
            paths |= _leaf_paths(sub, key + ".")
    return paths
