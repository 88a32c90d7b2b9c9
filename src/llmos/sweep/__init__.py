"""Hyper-parameter sweeps (`kind: sweep`): an Optuna study over the fields of a base train spec.

`plan` and its helpers decide (pure); `one_round` carries a decision out against a `Trials`
backend (the control plane's jobs, or `LocalTrials`' subprocesses); `run_sweep` is the foreground
driver behind `llmos sweep run`. Optuna is imported on first use.
"""

from llmos.sweep._decide import Plan, TrialView, best_trial, new_reports, plan
from llmos.sweep._driver import Run, Trials, finish, one_round, trial_value
from llmos.sweep._foreground import LocalTrials, run_sweep, sweep_folder
from llmos.sweep._study import Study, study_name
from llmos.sweep._tracking import Parent

__all__ = ["LocalTrials", "Parent", "Plan", "Run", "Study", "TrialView", "Trials", "best_trial", "finish",
           "new_reports", "one_round", "plan", "run_sweep", "study_name", "sweep_folder", "trial_value"]
