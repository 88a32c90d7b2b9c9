"""The Optuna study of a sweep, kept in a database through Optuna's RDB storage.

Under the control plane that database is the control plane's own (SQLite or PostgreSQL), so a
restarted daemon finds the study where it was. Optuna keeps its tables beside llmos's; both use
Alembic, and llmos's `alembic_version` row is the one in that table, so Optuna's schema check is
skipped (its schema is fixed by the optuna pin in pyproject.toml). Optuna is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmos.errors import LlmosError

if TYPE_CHECKING:
    import optuna

    from llmos.spec import ParamSpec, SweepJob

__all__ = ["Study", "study_name"]


def study_name(sweep: SweepJob, sweep_id: int | None = None) -> str:
    return f"llmos-{sweep.name}" + (f"-{sweep_id}" if sweep_id is not None else "")


class Study:
    """One sweep's study: ask for trials, report their evaluations, tell how they ended."""

    def __init__(self, sweep: SweepJob, url: str, name: str) -> None:
        optuna = _optuna()
        self.sweep = sweep
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):  # the daemon writes the same file: wait for its lock, never fail on it
            kwargs["connect_args"] = {"timeout": 30}
        storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True)
        self.study = optuna.create_study(study_name=name, storage=storage, sampler=_sampler(sweep),
                                         pruner=_pruner(sweep), direction=sweep.direction, load_if_exists=True)
        self._space = {path: _distribution(spec) for path, spec in sweep.params.items()}

    def ask(self) -> tuple[int, dict[str, Any]]:
        """A new trial: its number and its values at their dotted paths."""
        trial = self.study.ask(fixed_distributions=self._space)
        return trial.number, dict(trial.params)

    def trials(self) -> dict[int, Any]:
        """Every trial by number (Optuna's FrozenTrial: state, params, intermediate values, value)."""
        return {t.number: t for t in self.study.get_trials(deepcopy=False)}

    def report(self, number: int, reports: list[tuple[int, float]]) -> bool:
        """Report evaluations of a running trial; True when the pruner says to stop it."""
        optuna = _optuna()
        trial = optuna.trial.Trial(self.study, self._trial_id(number))
        for step, value in reports:
            trial.report(value, step)
        return bool(reports) and trial.should_prune()

    def tell(self, number: int, state: str, value: float | None = None) -> None:
        """Record how a trial ended (complete with its value, pruned, failed); a second call is a no-op."""
        optuna = _optuna()
        states = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED,
                  "failed": optuna.trial.TrialState.FAIL}
        if self.trials()[number].state.is_finished():
            return
        try:
            self.study.tell(number, value if state == "complete" else None, state=states[state])
        except RuntimeError as exc:
            # The grid sampler calls study.stop() once its grid is covered, which only works inside
            # study.optimize; the trial's state is stored before that (optuna's _tell: `finally`).
            if "Study.stop" not in str(exc):
                raise

    def _trial_id(self, number: int) -> int:
        return self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise LlmosError("kind: sweep needs Optuna, which is not installed.",
                         hint="pip install 'optuna>=4,<6' (it is a dependency of llmos: reinstall llmos)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _distribution(spec: ParamSpec) -> optuna.distributions.BaseDistribution:
    d = _optuna().distributions
    if spec.choices is not None:
        return d.CategoricalDistribution(spec.choices)
    low, high = spec.range or spec.log_range  # type: ignore[misc]
    log = spec.log_range is not None
    if spec.is_int:
        return d.IntDistribution(int(low), int(high), log=log, step=int(spec.step or 1))
    return d.FloatDistribution(float(low), float(high), log=log, step=None if spec.step is None else float(spec.step))


def _sampler(sweep: SweepJob) -> Any:
    samplers = _optuna().samplers
    if sweep.sampler == "grid":
        return samplers.GridSampler({p: list(s.choices or []) for p, s in sweep.params.items()}, seed=sweep.seed)
    if sweep.sampler == "random":
        return samplers.RandomSampler(seed=sweep.seed)
    return samplers.TPESampler(seed=sweep.seed)


def _pruner(sweep: SweepJob) -> Any:
    pruners, p = _optuna().pruners, sweep.pruner
    if p.kind == "median":
        return pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_steps)
    if p.kind == "successive_halving":
        return pruners.SuccessiveHalvingPruner(min_resource=p.min_resource or "auto",
                                               reduction_factor=p.reduction_factor)
    if p.kind == "hyperband":
        top = sweep.base.train.max_steps or "auto"
        return pruners.HyperbandPruner(min_resource=p.min_resource or 1, max_resource=top,
                                       reduction_factor=p.reduction_factor)
    return pruners.NopPruner()
