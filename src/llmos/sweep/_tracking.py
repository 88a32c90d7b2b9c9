"""A sweep in MLflow: a parent run, each trial's run nested under it (`mlflow.parentRunId`), and at
the end the best trial's figures plus two plots (optimisation history, parameter importance).

The parent's id is kept in the Optuna study (a user attribute), so a restarted driver finds it.
A trial's run is created here, before the trial starts, and its id written to the trial's run
folder (`run.json`), where the training recipe picks it up and continues it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmos.spec import SweepJob, TrainJob

__all__ = ["Parent"]

_PARENT_ATTR = "llmos.mlflow_parent_run_id"


class Parent:
    """The sweep's parent run (None everywhere when the base spec turns tracking off)."""

    def __init__(self, sweep: SweepJob, study: Any) -> None:
        self.sweep, self.study = sweep, study
        self.run_id: str | None = None
        self._tracker: Any = None
        self.experiment_id = ""
        self.uri = ""
        if not sweep.base.tracking.enabled:
            return
        from llmos.tracking import start_run

        cfg = sweep.base.tracking.model_copy(update={"system_metrics": False})
        previous = study.user_attrs.get(_PARENT_ATTR)
        tracker = start_run(cfg, run_name=sweep.name, job=sweep.model_dump(mode="json", by_alias=True),
                            tags={"llmos.recipe": "sweep", "llmos.study": study.study_name},
                            resume_run_id=previous)
        # A daemon that stops marks the run FAILED on its way out; the next one resumes it (RUNNING again).
        self.run_id, self.experiment_id, self.uri = tracker.run_id, tracker.experiment_id, tracker.tracking_uri
        self._tracker = tracker  # finish() ends the run through it (it would mark it FAILED at exit otherwise)
        if previous is None:
            study.set_user_attr(_PARENT_ATTR, self.run_id)

    def child(self, job: TrainJob, number: int, values: dict[str, Any]) -> None:
        """Create trial `number`'s run under the parent and leave its id in the trial's run folder."""
        if self.run_id is None or not job.tracking.enabled:
            return
        from llmos.run import prepare_run_dir, update_runfile

        run_dir = Path(prepare_run_dir(job).output)  # type: ignore[arg-type]
        client = self._client()
        run = client.create_run(self.experiment_id, run_name=job.name, tags={
            "mlflow.parentRunId": self.run_id, "llmos.trial": str(number),
            **{f"llmos.param.{k}": str(v) for k, v in values.items()}})
        update_runfile(run_dir, run_id=run.info.run_id)

    def finish(self, best: dict[str, Any] | None, failed: str | None) -> None:
        """The best trial's figures and the plots on the parent run, which then ends."""
        if self.run_id is None:
            return
        client = self._client()
        if best is not None:
            client.log_metric(self.run_id, f"best_{self.sweep.metric}", float(best["value"]))
            client.log_metric(self.run_id, "best_trial", float(best["number"]))
            for key, value in best["params"].items():
                client.set_tag(self.run_id, f"best.{key}", str(value))
        with tempfile.TemporaryDirectory() as tmp:
            for path in _plots(self.study, Path(tmp)):
                client.log_artifact(self.run_id, str(path), "plots")
        self._tracker.finish("FAILED" if failed else "FINISHED")

    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(self.uri)


def _plots(study: Any, folder: Path) -> list[Path]:
    """optimization_history.png and, with two or more complete trials, param_importances.png."""
    import matplotlib

    matplotlib.use("Agg")  # no display in a daemon
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    made = []
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    charts = [("optimization_history", ovm.plot_optimization_history)]
    if len(complete) >= 2 and len(study.get_trials()[0].distributions) >= 1:
        charts.append(("param_importances", ovm.plot_param_importances))
    import warnings

    for name, chart in charts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
            try:
                ax = chart(study)
            except (ValueError, RuntimeError):  # e.g. importance of a single value: no plot, not a failure
                continue
        path = folder / f"{name}.png"
        ax.figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(ax.figure)
        made.append(path)
    return made
